"""Our phonetic decision tree: statistics, questions, likelihood splitting, merging, Kaldi format.

kaldi-hmm-gmm binds no tree building, so this module does what Kaldi's ``acc-tree-stats``,
``cluster-phones``, ``compile-questions`` and ``build-tree`` do, written from scratch in numpy:

1. :func:`accumulate_tree_stats`: for every seen event (left phone, central phone, right phone,
   pdf-class) the Gaussian sufficient statistics (count, Σx, Σx²) of the frames aligned to it.
2. Questions: phone sets for the left/right context from ARPAbet phonetic classes
   (:data:`ARPABET_CLASSES`) and from a top-down likelihood clustering of the phones' own
   statistics (:func:`cluster_phones`, like Kaldi's cluster-phones); pdf-class questions
   ``{0}, {0,1}, ...`` so that the HMM states of a phone share one root.
3. :func:`build_tree`: one root per phone (shared by its pdf-classes); greedy splitting, best
   likelihood gain first, each side holding at least ``min_leaf_count`` frames, to
   ``split_overshoot`` x ``num_leaves`` leaves; then the leaves of each root are merged bottom-up,
   cheapest likelihood loss first (Kaldi's cluster step), down to exactly ``num_leaves`` pdfs
   (fewer only when the data run out of allowed splits).
4. :meth:`Tree.to_kaldi_bytes`: Kaldi's binary ``ContextDependency`` (TE/SE/CE event maps, see
   ``docs/tree_format.md``), which :meth:`Tree.to_context_dependency` loads into kaldi_hmm_gmm.

The Gaussian objective is Kaldi's ``GaussClusterable::Objf`` (diagonal, variance floored).
"""
import heapq
import logging
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import numpy as np

logger = logging.getLogger(__name__)

#: Event keys, as in Kaldi: context positions 0..N-1 and -1 for the pdf-class.
KEY_PDF_CLASS = -1
#: Triphone context: width 3, central position 1.
CONTEXT_WIDTH = 3
CENTRAL_POSITION = 1

#: Phonetic classes of the (stressless, upper-case) ARPAbet phone set, our own grouping.
ARPABET_CLASSES: Dict[str, Tuple[str, ...]] = {
    "vowel": ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"),
    "consonant": ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R",
                  "S", "SH", "T", "TH", "V", "W", "Y", "Z", "ZH"),
    "stop": ("B", "D", "G", "K", "P", "T"),
    "voiced_stop": ("B", "D", "G"),
    "unvoiced_stop": ("K", "P", "T"),
    "fricative": ("DH", "F", "HH", "S", "SH", "TH", "V", "Z", "ZH"),
    "voiced_fricative": ("DH", "V", "Z", "ZH"),
    "unvoiced_fricative": ("F", "HH", "S", "SH", "TH"),
    "affricate": ("CH", "JH"),
    "sibilant": ("CH", "JH", "S", "SH", "Z", "ZH"),
    "nasal": ("M", "N", "NG"),
    "liquid": ("L", "R"),
    "glide": ("W", "Y"),
    "approximant": ("L", "R", "W", "Y", "ER"),
    "sonorant": ("L", "M", "N", "NG", "R", "W", "Y"),
    "labial": ("B", "F", "M", "P", "V", "W"),
    "bilabial": ("B", "M", "P"),
    "labiodental": ("F", "V"),
    "dental": ("DH", "TH"),
    "alveolar": ("D", "L", "N", "S", "T", "Z"),
    "postalveolar": ("CH", "JH", "SH", "ZH", "R"),
    "velar": ("G", "K", "NG"),
    "front_vowel": ("AE", "EH", "EY", "IH", "IY"),
    "central_vowel": ("AH", "ER"),
    "back_vowel": ("AA", "AO", "OW", "UH", "UW"),
    "high_vowel": ("IH", "IY", "UH", "UW"),
    "mid_vowel": ("AH", "EH", "ER", "EY", "OW"),
    "low_vowel": ("AA", "AE", "AO"),
    "rounded_vowel": ("AO", "OW", "OY", "UH", "UW"),
    "diphthong": ("AW", "AY", "EY", "OW", "OY"),
    "y_offglide": ("AY", "EY", "IY", "OY"),
    "w_offglide": ("AW", "OW", "UW"),
}


@dataclass
class TreeConfig:
    """Options of :func:`build_tree`."""

    #: Target number of pdfs (tied states): the paper's 32000 on SWB+Fisher, ~1-3k on small data.
    num_leaves: int = 2000
    #: Each side of a split needs at least this many frames (Kaldi's --min-count ... / thresh).
    min_leaf_count: float = 50.0
    #: Variance floor of the Gaussian objective (Kaldi acc-tree-stats' --var-floor).
    var_floor: float = 0.01
    #: Merge leaves of the same root after splitting (Kaldi's cluster step).
    merge: bool = True
    #: With merging: split to ``ceil(num_leaves * split_overshoot)`` leaves, then merge the cheapest
    #: pairs of leaves of the same root down to ``num_leaves`` pdfs.
    split_overshoot: float = 1.25
    #: Use the ARPAbet phonetic-class questions.
    phonetic_questions: bool = True
    #: Use questions from automatic phone clustering of the statistics.
    auto_questions: bool = True


# --------------------------------------------------------------------------------------------
# Statistics


@dataclass
class TreeStats:
    """Gaussian sufficient statistics per event ``(left, central, right, pdf_class)``."""

    events: np.ndarray  # (E, 4) int64
    counts: np.ndarray  # (E,) float64
    sums: np.ndarray  # (E, D) float64
    sumsq: np.ndarray  # (E, D) float64

    @property
    def dim(self) -> int:
        return int(self.sums.shape[1])

    @staticmethod
    def merge(parts: Sequence["TreeStats"]) -> "TreeStats":
        """Sum statistics of the same events (e.g. from parallel workers)."""
        parts = [p for p in parts if p.events.shape[0]]
        if not parts:
            raise ValueError("no tree statistics to merge")
        ev = np.concatenate([p.events for p in parts])
        uniq, inv = np.unique(ev, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        counts = np.bincount(inv, weights=np.concatenate([p.counts for p in parts]), minlength=len(uniq))
        sums = np.zeros((len(uniq), parts[0].dim))
        sumsq = np.zeros_like(sums)
        np.add.at(sums, inv, np.concatenate([p.sums for p in parts]))
        np.add.at(sumsq, inv, np.concatenate([p.sumsq for p in parts]))
        return TreeStats(uniq.astype(np.int64), counts, sums, sumsq)

    def save(self, path: str) -> None:
        np.savez(path, events=self.events, counts=self.counts, sums=self.sums, sumsq=self.sumsq)

    @staticmethod
    def load(path: str) -> "TreeStats":
        with np.load(path) as d:
            return TreeStats(d["events"], d["counts"], d["sums"], d["sumsq"])


def accumulate_tree_stats(
    frame_phones: Sequence[np.ndarray],
    frame_pdf_classes: Sequence[np.ndarray],
    phone_starts: Sequence[np.ndarray],
    features: Sequence[np.ndarray],
) -> TreeStats:
    """Statistics for the tree from frame-level phone alignments.

    For each utterance: ``frame_phones[i]`` (T,) phone id per frame, ``frame_pdf_classes[i]`` (T,)
    pdf-class per frame, ``phone_starts[i]`` (T,) bool, True on the first frame of each phone
    instance, and ``features[i]`` (T, D). The left/right context of a phone instance is the
    previous/next instance's phone, 0 at the utterance edges (as in Kaldi's training graphs).
    """
    all_ev, all_x = [], []
    for phones, classes, starts, feats in zip(frame_phones, frame_pdf_classes, phone_starts, features):
        phones = np.asarray(phones, dtype=np.int64)
        if phones.shape[0] == 0:
            continue
        inst = np.cumsum(np.asarray(starts, dtype=np.int64)) - 1  # instance index per frame
        inst_phone = phones[np.asarray(starts, dtype=bool)]
        left = np.concatenate([[0], inst_phone[:-1]])
        right = np.concatenate([inst_phone[1:], [0]])
        ev = np.stack([left[inst], phones, right[inst], np.asarray(classes, dtype=np.int64)], axis=1)
        all_ev.append(ev)
        all_x.append(np.asarray(feats, dtype=np.float64))
    if not all_ev:
        raise ValueError("no aligned frames to accumulate tree statistics from")
    ev = np.concatenate(all_ev)
    x = np.concatenate(all_x)
    uniq, inv = np.unique(ev, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    counts = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    sums = np.zeros((len(uniq), x.shape[1]))
    sumsq = np.zeros_like(sums)
    np.add.at(sums, inv, x)
    np.add.at(sumsq, inv, x * x)
    return TreeStats(uniq.astype(np.int64), counts, sums, sumsq)


def gauss_objf(counts: np.ndarray, sums: np.ndarray, sumsq: np.ndarray, var_floor: float) -> np.ndarray:
    """Kaldi's ``GaussClusterable::Objf`` for a batch: log-likelihood of the data under its own
    diagonal ML Gaussian with floored variances ``v = max(var, floor)``,
    ``-0.5 n (Σ var/v + D log 2π + Σ log v)``; 0 where ``n <= 0``."""
    counts = np.asarray(counts, dtype=np.float64)
    safe = np.maximum(counts, 1e-20)[..., None]
    mean = sums / safe
    raw_var = sumsq / safe - mean * mean
    var = np.maximum(raw_var, var_floor)
    dim = sums.shape[-1]
    # Kaldi's form: the data term is var/floored_var per dimension (1 unless floored).
    objf = -0.5 * counts * ((raw_var / var).sum(-1) + dim * math.log(2 * math.pi) + np.log(var).sum(-1))
    return np.where(counts > 0, objf, 0.0)


# --------------------------------------------------------------------------------------------
# Questions


@dataclass
class Questions:
    """Questions per event key: ``{key: [frozenset of values, ...]}``."""

    by_key: Dict[int, List[FrozenSet[int]]] = field(default_factory=dict)

    def add(self, key: int, values: Sequence[int]) -> None:
        qs = self.by_key.setdefault(key, [])
        s = frozenset(int(v) for v in values)
        if s and s not in qs:
            qs.append(s)

    def num_questions(self) -> int:
        return sum(len(v) for v in self.by_key.values())


def cluster_phones(
    phone_ids: Sequence[int], stats: TreeStats, var_floor: float = 0.01, iters: int = 10
) -> List[FrozenSet[int]]:
    """Top-down binary clustering of phones by their pooled statistics (Kaldi's cluster-phones).

    Each phone's statistics are pooled over all contexts and pdf-classes. A set is split in two by
    a 2-means on the Gaussian objective (seeded with the phone whose separation gains most), and
    the halves are split recursively down to single phones. Returns every set of the recursion
    tree (the questions), singletons included.
    """
    ids = [p for p in phone_ids if np.any(stats.events[:, 1] == p)]
    dim = stats.dim
    cnt = {p: 0.0 for p in ids}
    s1 = {p: np.zeros(dim) for p in ids}
    s2 = {p: np.zeros(dim) for p in ids}
    for p in ids:
        m = stats.events[:, 1] == p
        cnt[p] = float(stats.counts[m].sum())
        s1[p] = stats.sums[m].sum(0)
        s2[p] = stats.sumsq[m].sum(0)

    def objf(group: Sequence[int]) -> float:
        if not group:
            return 0.0
        c = sum(cnt[p] for p in group)
        a = np.sum([s1[p] for p in group], axis=0)
        b = np.sum([s2[p] for p in group], axis=0)
        return float(gauss_objf(np.array([c]), a[None], b[None], var_floor)[0])

    out: List[FrozenSet[int]] = []

    def split(group: List[int]) -> None:
        out.append(frozenset(group))
        if len(group) <= 1:
            return
        # Seed: the single phone whose removal into its own cluster gains most.
        base = objf(group)
        gains = [objf([p]) + objf([q for q in group if q != p]) - base for p in group]
        a = [group[int(np.argmax(gains))]]
        b = [q for q in group if q not in a]
        for _ in range(iters):
            changed = False
            for p in list(group):
                src, dst = (a, b) if p in a else (b, a)
                if len(src) == 1:
                    continue
                before = objf(src) + objf(dst)
                after = objf([q for q in src if q != p]) + objf(dst + [p])
                if after > before + 1e-9:
                    src.remove(p)
                    dst.append(p)
                    changed = True
            if not changed:
                break
        split(sorted(a))
        split(sorted(b))

    if ids:
        split(sorted(ids))
    return out


def make_questions(
    phone_names: Sequence[str],
    speech_phone_ids: Sequence[int],
    silence_phone_ids: Sequence[int],
    num_pdf_classes: int,
    stats: Optional[TreeStats],
    config: TreeConfig,
) -> Questions:
    """All questions: context-phone sets for keys 0 and 2, pdf-class sets for key -1."""
    name_to_id = {n: i for i, n in enumerate(phone_names)}
    sets: List[FrozenSet[int]] = []
    speech = sorted(speech_phone_ids)
    sil = sorted(silence_phone_ids)
    sets.append(frozenset(sil))
    sets.append(frozenset(speech))
    for p in speech + sil:
        sets.append(frozenset([p]))
    if config.phonetic_questions:
        for cls in ARPABET_CLASSES.values():
            ids = [name_to_id[n] for n in cls if n in name_to_id]
            if ids:
                sets.append(frozenset(ids))
    if config.auto_questions and stats is not None:
        sets.extend(cluster_phones(speech, stats, config.var_floor))
        sets.extend(cluster_phones(sil, stats, config.var_floor))
    qs = Questions()
    for key in (0, 2):
        for s in sets:
            qs.add(key, sorted(s))
    for k in range(num_pdf_classes):
        qs.add(KEY_PDF_CLASS, list(range(k + 1)))
        qs.add(KEY_PDF_CLASS, [k])
    return qs


# --------------------------------------------------------------------------------------------
# The tree


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

_KEY_TO_COLUMN = {0: 0, 1: 1, 2: 2, KEY_PDF_CLASS: 3}


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
            node = node.yes if event[_KEY_TO_COLUMN[node.key]] in node.yes_set else node.no
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
                col = events[ix, _KEY_TO_COLUMN[node.key]]
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


# --------------------------------------------------------------------------------------------
# Building


@dataclass
class _LeafState:
    idx: np.ndarray  # event indices
    root: int
    count: float
    objf: float
    node: Leaf
    parent: Optional[Split] = None
    is_yes: bool = True
    best: Optional[Tuple[float, int, FrozenSet[int]]] = None


class _Builder:
    def __init__(self, stats: TreeStats, questions: Questions, config: TreeConfig) -> None:
        self.stats = stats
        self.config = config
        self.events = stats.events
        self.max_val = int(max(self.events.max(), 0)) + 1
        self.qmats: Dict[int, Tuple[np.ndarray, List[FrozenSet[int]]]] = {}
        for key, qs in questions.by_key.items():
            mat = np.zeros((len(qs), self.max_val))
            for i, q in enumerate(qs):
                vals = [v for v in q if 0 <= v < self.max_val]
                mat[i, vals] = 1.0
            self.qmats[key] = (mat, qs)

    def objf_of(self, idx: np.ndarray) -> Tuple[float, float]:
        c = self.stats.counts[idx].sum()
        s = self.stats.sums[idx].sum(0)
        q = self.stats.sumsq[idx].sum(0)
        return float(c), float(gauss_objf(np.array([c]), s[None], q[None], self.config.var_floor)[0])

    def best_split(self, leaf: _LeafState) -> Optional[Tuple[float, int, FrozenSet[int]]]:
        idx = leaf.idx
        if leaf.count < 2 * self.config.min_leaf_count or len(idx) < 2:
            return None
        st = self.stats
        best: Optional[Tuple[float, int, FrozenSet[int]]] = None
        for key, (mat, qs) in self.qmats.items():
            vals = self.events[idx, _KEY_TO_COLUMN[key]]
            if np.all(vals == vals[0]):
                continue
            aggc = np.bincount(vals, weights=st.counts[idx], minlength=self.max_val)
            aggs = np.zeros((self.max_val, st.dim))
            aggq = np.zeros((self.max_val, st.dim))
            np.add.at(aggs, vals, st.sums[idx])
            np.add.at(aggq, vals, st.sumsq[idx])
            yc = mat @ aggc
            ys = mat @ aggs
            yq = mat @ aggq
            nc = aggc.sum() - yc
            ns = aggs.sum(0)[None] - ys
            nq = aggq.sum(0)[None] - yq
            ok = (yc >= self.config.min_leaf_count) & (nc >= self.config.min_leaf_count)
            if not np.any(ok):
                continue
            gain = (
                gauss_objf(yc, ys, yq, self.config.var_floor)
                + gauss_objf(nc, ns, nq, self.config.var_floor)
                - leaf.objf
            )
            gain = np.where(ok, gain, -np.inf)
            i = int(np.argmax(gain))
            if best is None or gain[i] > best[0]:
                best = (float(gain[i]), key, qs[i])
        if best is None or best[0] <= 0:
            return None
        return best


def build_tree(
    stats: TreeStats,
    questions: Questions,
    phone_to_num_pdf_classes: Dict[int, int],
    config: TreeConfig,
) -> Tuple[Tree, Dict[str, Any]]:
    """Grow the tree (see module docstring). Returns the tree and a summary dict
    (objective before/after, number of leaves before merging, merges, smallest split gain)."""
    builder = _Builder(stats, questions, config)
    ev = stats.events
    leaves: List[_LeafState] = []
    roots: Dict[int, Node] = {}
    heap: List[Tuple[float, int]] = []
    for phone in sorted(phone_to_num_pdf_classes):
        idx = np.nonzero(ev[:, 1] == phone)[0]
        node = Leaf(pdf=-1, leaf_id=len(leaves))
        roots[phone] = node
        c, o = builder.objf_of(idx)
        st = _LeafState(idx=idx, root=phone, count=c, objf=o, node=node)
        st.best = builder.best_split(st)
        leaves.append(st)
        if st.best is not None:
            heapq.heappush(heap, (-st.best[0], st.node.leaf_id))
    objf_start = sum(l.objf for l in leaves)
    target = config.num_leaves
    if target < len(leaves):
        raise ValueError(
            f"num_leaves={target} is below the number of phones ({len(leaves)}); each phone needs a root"
        )

    def do_split(leaf_id: int) -> float:
        st = leaves[leaf_id]
        gain, key, q = st.best  # type: ignore[misc]
        col = ev[st.idx, _KEY_TO_COLUMN[key]]
        m = np.isin(col, list(q))
        children = []
        for part in (st.idx[m], st.idx[~m]):
            node = Leaf(pdf=-1, leaf_id=len(leaves))
            c, o = builder.objf_of(part)
            ch = _LeafState(idx=part, root=st.root, count=c, objf=o, node=node)
            ch.best = builder.best_split(ch)
            leaves.append(ch)
            children.append(ch)
            if ch.best is not None:
                heapq.heappush(heap, (-ch.best[0], node.leaf_id))
        split = Split(key=key, yes_set=tuple(sorted(q)), yes=children[0].node, no=children[1].node)
        _replace(roots, st, split)
        children[0].parent, children[0].is_yes = split, True
        children[1].parent, children[1].is_yes = split, False
        st.idx = np.zeros(0, dtype=np.int64)
        st.node = None  # type: ignore[assignment]
        return gain

    active = {l.node.leaf_id for l in leaves}
    min_gain = math.inf
    grow_to = int(math.ceil(target * config.split_overshoot)) if config.merge else target
    while len(active) < grow_to and heap:
        _, lid = heapq.heappop(heap)
        if lid not in active:
            continue
        g = do_split(lid)
        active.discard(lid)
        active.update({len(leaves) - 2, len(leaves) - 1})
        min_gain = min(min_gain, g)
    if config.merge and len(active) > target:
        clusters = _merge_leaves([leaves[i] for i in sorted(active)], builder, target)
    else:
        clusters = [[i] for i in sorted(active)]
    num_merges = len(active) - len(clusters)

    # Number pdfs: clusters in root (phone) order, then by first leaf.
    clusters.sort(key=lambda cl: (leaves[cl[0]].root, min(cl)))
    for pdf, cl in enumerate(clusters):
        for lid in cl:
            leaves[lid].node.pdf = pdf
    tree = Tree(roots=roots, num_pdfs=len(clusters))
    objf_end = 0.0
    for cl in clusters:
        idx = np.concatenate([leaves[i].idx for i in cl])
        objf_end += builder.objf_of(idx)[1]
    summary = {
        "num_leaves_before_merge": len(active),
        "num_pdfs": len(clusters),
        "num_merges": num_merges,
        "min_split_gain": float(min_gain) if math.isfinite(min_gain) else None,
        "objf_per_frame_start": objf_start / float(stats.counts.sum()),
        "objf_per_frame_end": objf_end / float(stats.counts.sum()),
        "num_questions": questions.num_questions(),
    }
    logger.info("tree: %s", summary)
    return tree, summary


def _replace(roots: Dict[int, Node], st: _LeafState, new: Split) -> None:
    if st.parent is None:
        roots[st.root] = new
    elif st.is_yes:
        st.parent.yes = new
    else:
        st.parent.no = new


def _merge_leaves(active: List[_LeafState], builder: _Builder, target: int) -> List[List[int]]:
    """Merge leaves of the same root bottom-up, always the pair whose merge loses the least
    likelihood (Kaldi's cluster step), until ``target`` clusters remain. Returns clusters of
    leaf ids."""
    st = builder.stats
    var_floor = builder.config.var_floor
    # Per root: clusters with their stats.
    groups: Dict[int, List[_LeafState]] = {}
    for l in active:
        groups.setdefault(l.root, []).append(l)
    root_clusters: Dict[int, List[List[int]]] = {}
    root_stats: Dict[int, List[Tuple[float, np.ndarray, np.ndarray]]] = {}

    def pair_costs(cs: List[Tuple[float, np.ndarray, np.ndarray]]) -> np.ndarray:
        c = np.array([x[0] for x in cs])
        s = np.stack([x[1] for x in cs])
        q = np.stack([x[2] for x in cs])
        single = gauss_objf(c, s, q, var_floor)
        both = gauss_objf(c[:, None] + c[None, :], s[:, None] + s[None, :], q[:, None] + q[None, :], var_floor)
        cost = single[:, None] + single[None, :] - both
        cost[np.tril_indices(len(cs))] = np.inf
        return cost

    for root, ls in groups.items():
        root_clusters[root] = [[l.node.leaf_id] for l in ls]
        root_stats[root] = [
            (float(st.counts[l.idx].sum()), st.sums[l.idx].sum(0), st.sumsq[l.idx].sum(0)) for l in ls
        ]

    def cheapest(root: int) -> Optional[Tuple[float, int, int, int]]:
        cs = root_stats[root]
        if len(cs) < 2:
            return None
        cost = pair_costs(cs)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        return (float(cost[i, j]), root, int(i), int(j))

    def merge(root: int, i: int, j: int) -> None:
        a, b = root_stats[root][i], root_stats[root][j]
        root_stats[root][i] = (a[0] + b[0], a[1] + b[1], a[2] + b[2])
        root_clusters[root][i] = root_clusters[root][i] + root_clusters[root][j]
        del root_stats[root][j]
        del root_clusters[root][j]

    total = sum(len(v) for v in root_clusters.values())
    heap = [c for c in (cheapest(r) for r in groups) if c is not None]
    heapq.heapify(heap)
    while heap:
        if total <= target:
            break
        cost, root, i, j = heapq.heappop(heap)
        merge(root, i, j)
        total -= 1
        nxt = cheapest(root)
        if nxt is not None:
            heapq.heappush(heap, nxt)
    out: List[List[int]] = []
    for root in sorted(root_clusters):
        out.extend(root_clusters[root])
    return out


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
