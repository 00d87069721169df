"""The phonetic decision tree (:class:`Tree`) and its Kaldi binary format.

A tree holds one binary question tree per central phone; :meth:`Tree.to_kaldi_bytes` writes Kaldi's
binary ``ContextDependency`` (TE/SE/CE event maps, see ``docs/tree_format.md``), which
:meth:`Tree.to_context_dependency` loads into kaldi_hmm_gmm.
"""
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from asr_bl.hmm.tree.stats import CENTRAL_POSITION, CONTEXT_WIDTH, EVENT_COLUMN, KEY_PDF_CLASS


@dataclass
class Leaf:
    pdf: int
    #: Index of the leaf in the split order (before merging), for bookkeeping.
    leaf_id: int = -1


@dataclass
class Split:
    key: int
    yes_set: Tuple[int, ...]
    yes: "Node"
    no: "Node"


Node = Union[Leaf, Split]


@dataclass
class Tree:
    """A context-dependency tree: per central phone (key 1) a binary tree of questions."""

    roots: Dict[int, Node]  # central phone -> node
    num_pdfs: int
    context_width: int = CONTEXT_WIDTH
    central_position: int = CENTRAL_POSITION

    def map(self, left: int, central: int, right: int, pdf_class: int) -> int:
        """The pdf of a context; KeyError for a central phone without a root."""
        event = (left, central, right, pdf_class)
        node = self.roots[central]
        while isinstance(node, Split):
            node = node.yes if event[EVENT_COLUMN[node.key]] in node.yes_set else node.no
        return node.pdf

    def map_events(self, events: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`map` over ``(E, 4)`` events."""
        out = np.full(events.shape[0], -1, dtype=np.int64)
        for phone, root in self.roots.items():
            idx = np.nonzero(events[:, 1] == phone)[0]
            stack = [(root, idx)]
            while stack:
                node, ix = stack.pop()
                if ix.size == 0:
                    continue
                if isinstance(node, Leaf):
                    out[ix] = node.pdf
                    continue
                col = events[ix, EVENT_COLUMN[node.key]]
                m = np.isin(col, node.yes_set)
                stack.append((node.yes, ix[m]))
                stack.append((node.no, ix[~m]))
        return out

    def leaves(self) -> List[Leaf]:
        out: List[Leaf] = []
        for phone in sorted(self.roots):
            stack = [self.roots[phone]]
            while stack:
                n = stack.pop()
                if isinstance(n, Leaf):
                    out.append(n)
                else:
                    stack.extend([n.no, n.yes])
        return out

    # -- Kaldi binary ContextDependency ---------------------------------------------------------

    def to_kaldi_bytes(self) -> bytes:
        """Kaldi's binary ``ContextDependency`` (see docs/tree_format.md)."""
        max_phone = max(self.roots)
        table: List[Optional[Node]] = [self.roots.get(p) for p in range(max_phone + 1)]
        body = _tok("TE") + _i32(self.central_position) + _u32(len(table)) + _tok("(")
        for node in table:
            body += _tok("NULL") if node is None else _node_bytes(node)
        body += _tok(")")
        return (
            _tok("ContextDependency")
            + _i32(self.context_width)
            + _i32(self.central_position)
            + _tok("ToPdf")
            + body
            + _tok("EndContextDependency")
        )

    def to_context_dependency(self) -> Any:
        """A kaldi_hmm_gmm ``ContextDependency`` loaded from :meth:`to_kaldi_bytes`."""
        return context_dependency_from_bytes(self.to_kaldi_bytes())

    # -- plain serialisation of our structure ---------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        def enc(n: Node) -> Any:
            if isinstance(n, Leaf):
                return n.pdf
            return [n.key, list(n.yes_set), enc(n.yes), enc(n.no)]

        return {
            "num_pdfs": self.num_pdfs,
            "context_width": self.context_width,
            "central_position": self.central_position,
            "roots": {str(p): enc(n) for p, n in self.roots.items()},
        }

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "Tree":
        def dec(x: Any) -> Node:
            if isinstance(x, int):
                return Leaf(x)
            return Split(int(x[0]), tuple(int(v) for v in x[1]), dec(x[2]), dec(x[3]))

        return Tree(
            roots={int(p): dec(n) for p, n in d["roots"].items()},
            num_pdfs=int(d["num_pdfs"]),
            context_width=int(d["context_width"]),
            central_position=int(d["central_position"]),
        )


def _tok(s: str) -> bytes:
    return s.encode("ascii") + b" "


def _i32(v: int) -> bytes:
    # Kaldi's WriteBasicType: one byte holding sizeof(T) (negated for unsigned types), then LE data.
    return b"\x04" + struct.pack("<i", int(v))


def _u32(v: int) -> bytes:
    return struct.pack("<b", -4) + struct.pack("<I", int(v))


def _int_vector(vals: Sequence[int]) -> bytes:
    # Kaldi's WriteIntegerVector: one byte sizeof(T), int32 length, then raw elements.
    return b"\x04" + struct.pack("<i", len(vals)) + struct.pack(f"<{len(vals)}i", *vals)


def _node_bytes(node: Node) -> bytes:
    if isinstance(node, Leaf):
        return _tok("CE") + _i32(node.pdf)
    return (
        _tok("SE")
        + _i32(node.key)
        + _int_vector(sorted(node.yes_set))
        + _tok("{")
        + _node_bytes(node.yes)
        + _node_bytes(node.no)
        + _tok("}")
    )


def context_dependency_from_bytes(data: bytes) -> Any:
    """Load Kaldi-binary ContextDependency bytes into kaldi_hmm_gmm (through its pickle state)."""
    from asr_bl._kaldi import import_kaldi

    khg, _ = import_kaldi()
    ctx = khg.ContextDependency.__new__(khg.ContextDependency)
    ctx.__setstate__(([b - 256 if b > 127 else b for b in data],))
    return ctx


def context_dependency_to_bytes(ctx: Any) -> bytes:
    """The Kaldi-binary bytes of a kaldi_hmm_gmm ``ContextDependency`` (from its pickle state)."""
    return bytes((b + 256) % 256 for b in ctx.__getstate__()[0])


def build_monophone_tree(phone_to_num_pdf_classes: Dict[int, int]) -> Tree:
    """The monophone tree (one pdf per phone and pdf-class) as our :class:`Tree` with width 3,
    useful for tests and for converting monophone alignments."""
    roots: Dict[int, Node] = {}
    pdf = 0
    for phone in sorted(phone_to_num_pdf_classes):
        n = phone_to_num_pdf_classes[phone]
        node: Node = Leaf(pdf + n - 1)
        for k in range(n - 2, -1, -1):
            node = Split(KEY_PDF_CLASS, (k,), Leaf(pdf + k), node)
        roots[phone] = node
        pdf += n
    return Tree(roots=roots, num_pdfs=pdf)
