"""The GMM-HMM model container and alignment bookkeeping (transition-id tables, convert-ali).

A model is kaldi_hmm_gmm's ``TransitionModel`` + ``AmDiagGmm`` + ``ContextDependency`` (+ our
:class:`~asr_bl.hmm.tree.Tree` for triphone models). It is stored as ``final.mdl`` (a pickle of
the bindings' own pickle states, which are Kaldi's binary objects) and ``tree`` (Kaldi's binary
ContextDependency, readable by Kaldi's ``tree-info``/``draw-tree``).
"""
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.tree import Tree, context_dependency_from_bytes, context_dependency_to_bytes
from asr_bl.io import write_bytes

logger = logging.getLogger(__name__)


@dataclass
class TransitionTables:
    """Per transition-id lookup arrays (index 0 unused), derived from the transition model.

    kaldi_hmm_gmm does not expose the transition-state tuples, so they are rebuilt from the tree's
    pdf info and the topology in Kaldi's order (phone, HMM state, pdf) and checked against the
    model's own ``transition_id_to_phone``/``transition_id_to_pdf``.
    """

    phone: np.ndarray  # (num_tids + 1,)
    hmm_state: np.ndarray
    pdf: np.ndarray
    pdf_class: np.ndarray
    trans_index: np.ndarray
    #: (phone, hmm_state, pdf) -> transition-state (1-based)
    tuple_to_state: Dict[Tuple[int, int, int], int]
    state2id: np.ndarray  # transition-state -> first transition-id

    @staticmethod
    def build(tm: Any, topo: Any, ctx_dep: Any) -> "TransitionTables":
        phones = list(topo.phones)
        ncls = list(topo.get_phone_to_num_pdf_classes())
        info = ctx_dep.get_pdf_info(phones, ncls)
        pdfs_of: Dict[Tuple[int, int], set] = {}
        for pdf, pairs in enumerate(info):
            for p, c in pairs:
                pdfs_of.setdefault((int(p), int(c)), set()).add(pdf)
        tuples: List[Tuple[int, int, int, int]] = []  # phone, hmm_state, pdf, pdf_class
        for p in sorted(phones):
            for h, hs in enumerate(topo.topology_for_phone(p)):
                if hs.forward_pdf_class < 0:
                    continue
                if hs.self_loop_pdf_class != hs.forward_pdf_class:
                    raise NotImplementedError("non-HMM topologies (separate self-loop pdf-classes)")
                for pdf in sorted(pdfs_of.get((p, hs.forward_pdf_class), ())):
                    tuples.append((p, h, pdf, hs.forward_pdf_class))
        state2id = np.asarray(tm.state2id, dtype=np.int64)
        if len(tuples) != len(state2id) - 2:
            raise RuntimeError(
                f"rebuilt {len(tuples)} transition states but the model has {len(state2id) - 2}"
            )
        n = tm.num_transition_ids
        phone = np.zeros(n + 1, dtype=np.int64)
        hmm_state = np.zeros(n + 1, dtype=np.int64)
        pdf = np.zeros(n + 1, dtype=np.int64)
        pdf_class = np.zeros(n + 1, dtype=np.int64)
        trans_index = np.zeros(n + 1, dtype=np.int64)
        for s, (p, h, f, c) in enumerate(tuples, start=1):
            first, last = int(state2id[s]), int(state2id[s + 1])
            if tm.transition_id_to_phone(first) != p or tm.transition_id_to_pdf(first) != f:
                raise RuntimeError(f"transition state {s}: rebuilt tuple {(p, h, f)} disagrees with the model")
            for tid in range(first, last):
                phone[tid], hmm_state[tid], pdf[tid], pdf_class[tid] = p, h, f, c
                trans_index[tid] = tid - first
        return TransitionTables(
            phone=phone,
            hmm_state=hmm_state,
            pdf=pdf,
            pdf_class=pdf_class,
            trans_index=trans_index,
            tuple_to_state={(p, h, f): s for s, (p, h, f, _) in enumerate(tuples, start=1)},
            state2id=state2id,
        )

    def phone_starts(self, tids: np.ndarray) -> np.ndarray:
        """True on the first frame of each phone instance of an alignment.

        A new instance starts where the phone changes or where the HMM re-enters state 0 (no
        topology here returns to state 0), which also separates repeated phones.
        """
        tids = np.asarray(tids, dtype=np.int64)
        if tids.size == 0:
            return np.zeros(0, dtype=bool)
        ph, hs = self.phone[tids], self.hmm_state[tids]
        start = np.ones(tids.shape[0], dtype=bool)
        start[1:] = (ph[1:] != ph[:-1]) | ((hs[1:] == 0) & (hs[:-1] != 0))
        return start


def phone_segments(tables: TransitionTables, tids: np.ndarray) -> List[Tuple[int, int, int]]:
    """Phone instances of an alignment as ``(phone, start_frame, num_frames)``."""
    starts = np.nonzero(tables.phone_starts(tids))[0]
    ends = np.append(starts[1:], len(tids))
    return [(int(tables.phone[tids[s]]), int(s), int(e - s)) for s, e in zip(starts, ends)]


def convert_alignment(
    tids: np.ndarray, old: TransitionTables, new: TransitionTables, tree: Tree
) -> np.ndarray:
    """Kaldi's convert-ali: map an alignment to a model with another tree (same topology).

    Each frame keeps its phone, HMM state and transition index; its pdf comes from the new tree
    for the phone instance's (left, central, right) context.
    """
    return convert_alignments([tids], old, new, tree)[0]


def convert_alignments(
    alignments: List[np.ndarray], old: TransitionTables, new: TransitionTables, tree: Tree
) -> List[np.ndarray]:
    """:func:`convert_alignment` for many utterances at once (one vectorised tree lookup)."""
    if not alignments:
        return []
    lengths = [len(a) for a in alignments]
    events = []
    for tids in alignments:
        tids = np.asarray(tids, dtype=np.int64)
        if tids.size == 0:
            continue
        starts = old.phone_starts(tids)
        inst = np.cumsum(starts) - 1
        inst_phone = old.phone[tids[starts]]
        left = np.concatenate([[0], inst_phone[:-1]])[inst]
        right = np.concatenate([inst_phone[1:], [0]])[inst]
        events.append(np.stack([left, old.phone[tids], right, old.pdf_class[tids]], axis=1))
    if not events:
        return [np.zeros(0, dtype=np.int32) for _ in alignments]
    all_tids = np.concatenate([np.asarray(a, dtype=np.int64) for a in alignments])
    ev = np.concatenate(events)
    pdfs = tree.map_events(ev)
    hs = old.hmm_state[all_tids]
    # (phone, hmm_state, pdf) -> new transition state, looked up once per distinct triple.
    triples = np.stack([ev[:, 1], hs, pdfs], axis=1)
    uniq, inv = np.unique(triples, axis=0, return_inverse=True)
    try:
        state_of = np.array([new.tuple_to_state[(int(p), int(h), int(f))] for p, h, f in uniq], dtype=np.int64)
    except KeyError as e:
        raise RuntimeError(f"convert-ali: the new model has no transition state for {e}") from e
    out = (new.state2id[state_of[inv.reshape(-1)]] + old.trans_index[all_tids]).astype(np.int32)
    return np.split(out, np.cumsum(lengths)[:-1])


class GmmHmm:
    """A trained (or initialised) GMM-HMM: topology, tree, transition model, acoustic model."""

    def __init__(self, topo_text: str, ctx_dep: Any, tm: Any, am: Any, tree: Optional[Tree] = None) -> None:
        self.topo_text = topo_text
        self.ctx_dep = ctx_dep
        self.tm = tm
        self.am = am
        self.tree = tree
        self._tables: Optional[TransitionTables] = None

    @property
    def topo(self) -> Any:
        return self.tm.topo

    @property
    def num_pdfs(self) -> int:
        return int(self.tm.num_pdfs)

    @property
    def tables(self) -> TransitionTables:
        if self._tables is None:
            self._tables = TransitionTables.build(self.tm, self.tm.topo, self.ctx_dep)
        return self._tables

    def to_bytes(self) -> bytes:
        return pickle.dumps(
            {
                "format": "asr_bl.gmmhmm.v1",
                "topo": self.topo_text,
                "tree_kaldi": context_dependency_to_bytes(self.ctx_dep),
                "tree": self.tree.to_dict() if self.tree is not None else None,
                "tm": self.tm,
                "am": self.am,
            },
            protocol=4,
        )

    @staticmethod
    def from_bytes(data: bytes) -> "GmmHmm":
        import_kaldi()
        d = pickle.loads(data)
        if d.get("format") != "asr_bl.gmmhmm.v1":
            raise ValueError("not an asr_bl GMM-HMM model (format tag missing)")
        tree = Tree.from_dict(d["tree"]) if d["tree"] is not None else None
        return GmmHmm(d["topo"], context_dependency_from_bytes(d["tree_kaldi"]), d["tm"], d["am"], tree)

    def save(self, path: Path) -> None:
        """Write the model to ``path`` and the Kaldi tree beside it (``tree``), atomically."""
        path = Path(path)
        write_bytes(path, self.to_bytes())
        write_bytes(path.parent / "tree", context_dependency_to_bytes(self.ctx_dep))

    @staticmethod
    def load(path: Path) -> "GmmHmm":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; train the model first (asr_bl-gmm train-mono/train-tri)")
        return GmmHmm.from_bytes(path.read_bytes())
