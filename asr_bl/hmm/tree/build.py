"""Growing the tree (Kaldi's ``build-tree``): likelihood splitting, then merging to ``num_leaves``.

One root per phone (shared by its pdf-classes); greedy splitting, best likelihood gain first, each
side holding at least ``min_leaf_count`` frames, to ``split_overshoot`` x ``num_leaves`` leaves;
then the leaves of each root are merged bottom-up, cheapest likelihood loss first (Kaldi's cluster
step), down to exactly ``num_leaves`` pdfs (fewer only when the data run out of allowed splits).
"""
import heapq
import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

import numpy as np

from asr_bl.hmm.tree.config import TreeConfig
from asr_bl.hmm.tree.context_tree import Leaf, Node, Split, Tree
from asr_bl.hmm.tree.questions import Questions
from asr_bl.hmm.tree.stats import EVENT_COLUMN, TreeStats, gauss_objf

logger = logging.getLogger(__name__)


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
            vals = self.events[idx, EVENT_COLUMN[key]]
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
    objf_start = sum(leaf.objf for leaf in leaves)
    target = config.num_leaves
    if target < len(leaves):
        raise ValueError(
            f"num_leaves={target} is below the number of phones ({len(leaves)}); each phone needs a root"
        )

    def do_split(leaf_id: int) -> float:
        st = leaves[leaf_id]
        gain, key, q = st.best  # type: ignore[misc]
        col = ev[st.idx, EVENT_COLUMN[key]]
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

    active = {leaf.node.leaf_id for leaf in leaves}
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
    for leaf in active:
        groups.setdefault(leaf.root, []).append(leaf)
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
        root_clusters[root] = [[leaf.node.leaf_id] for leaf in ls]
        root_stats[root] = [
            (float(st.counts[leaf.idx].sum()), st.sums[leaf.idx].sum(0), st.sumsq[leaf.idx].sum(0)) for leaf in ls
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
