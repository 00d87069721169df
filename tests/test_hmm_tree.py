"""Decision tree: objective, splitting invariants, merging, Kaldi serialisation round trip."""
import itertools

import numpy as np
import pytest

from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.tree import (
    KEY_PDF_CLASS,
    Leaf,
    Questions,
    Split,
    Tree,
    TreeConfig,
    TreeStats,
    accumulate_tree_stats,
    build_monophone_tree,
    build_tree,
    cluster_phones,
    context_dependency_from_bytes,
    context_dependency_to_bytes,
    gauss_objf,
    make_questions,
)

khg, _ = import_kaldi()

# Phones 1..2 "silence" (5 pdf-classes), 3..8 speech (3 pdf-classes).
PHONE_NAMES = ["<eps>", "sil", "spn", "AA", "IY", "B", "D", "S", "M"]
SIL, SPEECH = [1, 2], [3, 4, 5, 6, 7, 8]
NCLS = {1: 5, 2: 5, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3, 8: 3}


def planted_stats(seed: int = 0, dim: int = 4) -> TreeStats:
    """Random frames whose mean depends on central phone, pdf-class and (for vowels) on whether
    the right context is a nasal/stop, so the tree has real structure to find."""
    rng = np.random.default_rng(seed)
    phones, classes, starts, feats = [], [], [], []
    for _ in range(60):
        seq = [1] + list(rng.choice(SPEECH, size=8)) + [1]
        ph, cl, st, x = [], [], [], []
        for i, p in enumerate(seq):
            right = seq[i + 1] if i + 1 < len(seq) else 0
            for c in range(NCLS[p]):
                n = int(rng.integers(2, 5))
                mean = np.full(dim, 3.0 * p + c)
                if p in (3, 4) and right in (5, 6, 8):
                    mean[0] += 4.0
                ph += [p] * n
                cl += [c] * n
                st += [c == 0] + [False] * (n - 1)
                x.append(mean + rng.standard_normal((n, dim)))
        phones.append(np.array(ph))
        classes.append(np.array(cl))
        starts.append(np.array(st))
        feats.append(np.concatenate(x))
    return accumulate_tree_stats(phones, classes, starts, feats)


@pytest.fixture(scope="module")
def stats() -> TreeStats:
    return planted_stats()


def all_contexts():
    for c in sorted(NCLS):
        for left, right in itertools.product(range(len(PHONE_NAMES)), repeat=2):
            for k in range(NCLS[c]):
                yield left, c, right, k


def test_gauss_objf_matches_kaldi_gauss_clusterable():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 5)) * np.array([1.0, 2.0, 0.05, 3.0, 0.5])
    g = khg.GaussClusterable(5, 0.01)
    for v in x:
        g.add_stats(v, 1.0)
    ours = gauss_objf(np.array([37.0]), x.sum(0)[None], (x * x).sum(0)[None], 0.01)[0]
    assert ours == pytest.approx(g.objf(), rel=1e-5)


def test_accumulate_tree_stats_contexts():
    # One utterance: sil(2 frames) AA(3) B(3); contexts are previous/next phone instance, 0 at edges.
    phones = [np.array([1, 1, 3, 3, 3, 5, 5, 5])]
    classes = [np.array([0, 1, 0, 1, 2, 0, 1, 2])]
    starts = [np.array([1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)]
    feats = [np.arange(16, dtype=float).reshape(8, 2)]
    st = accumulate_tree_stats(phones, classes, starts, feats)
    ev = {tuple(e): c for e, c in zip(st.events.tolist(), st.counts.tolist())}
    assert ev == {(0, 1, 3, 0): 1, (0, 1, 3, 1): 1, (1, 3, 5, 0): 1, (1, 3, 5, 1): 1, (1, 3, 5, 2): 1,
                  (3, 5, 0, 0): 1, (3, 5, 0, 1): 1, (3, 5, 0, 2): 1}
    assert st.sums.sum() == pytest.approx(feats[0].sum())
    merged = TreeStats.merge([st, st])
    assert np.array_equal(merged.events, st.events) and np.allclose(merged.counts, 2 * st.counts)


def test_cluster_phones_gives_nested_sets(stats):
    sets = cluster_phones(SPEECH, stats)
    assert frozenset(SPEECH) in sets
    for p in SPEECH:
        assert frozenset([p]) in sets
    # Recursion tree: any two sets are nested or disjoint.
    for a, b in itertools.combinations(sets, 2):
        assert a <= b or b <= a or not (a & b)


def _check_tree(tree: Tree, stats: TreeStats, cfg: TreeConfig):
    # Every pdf 0..n-1 is produced by some context (every leaf reachable, numbering contiguous).
    produced = {tree.map(*ctx) for ctx in all_contexts()}
    assert produced == set(range(tree.num_pdfs))
    leaf_pdfs = {leaf.pdf for leaf in tree.leaves()}
    assert leaf_pdfs == set(range(tree.num_pdfs))
    # Questions partition the events of each node; each side of a split holds >= min_leaf_count.
    for phone, root in tree.roots.items():
        idx = np.nonzero(stats.events[:, 1] == phone)[0]
        stack = [(root, idx)]
        while stack:
            node, ix = stack.pop()
            if isinstance(node, Leaf):
                continue
            col = {0: 0, 2: 2, KEY_PDF_CLASS: 3}[node.key]
            yes = ix[np.isin(stats.events[ix, col], node.yes_set)]
            no = ix[~np.isin(stats.events[ix, col], node.yes_set)]
            assert len(yes) + len(no) == len(ix) and not set(yes) & set(no)
            assert stats.counts[yes].sum() >= cfg.min_leaf_count
            assert stats.counts[no].sum() >= cfg.min_leaf_count
            stack += [(node.yes, yes), (node.no, no)]
    # Vectorised mapping equals the scalar one.
    ev = np.array(list(all_contexts()))
    assert np.array_equal(tree.map_events(ev), [tree.map(*e) for e in ev.tolist()])


@pytest.mark.parametrize("merge", [False, True])
def test_build_tree_invariants_and_leaf_count(stats, merge):
    cfg = TreeConfig(num_leaves=40, min_leaf_count=20, merge=merge)
    qs = make_questions(PHONE_NAMES, SPEECH, SIL, 5, stats, cfg)
    tree, summary = build_tree(stats, qs, NCLS, cfg)
    _check_tree(tree, stats, cfg)
    assert tree.num_pdfs == 40  # as configured (the data have enough splits)
    assert summary["objf_per_frame_end"] > summary["objf_per_frame_start"]
    if merge:
        assert summary["num_merges"] > 0 and summary["num_leaves_before_merge"] > 40
    else:
        assert summary["num_merges"] == 0 and len(tree.leaves()) == 40


def test_tree_finds_planted_right_context_split(stats):
    cfg = TreeConfig(num_leaves=60, min_leaf_count=20, merge=False)
    qs = make_questions(PHONE_NAMES, SPEECH, SIL, 5, stats, cfg)
    tree, _ = build_tree(stats, qs, NCLS, cfg)
    # For AA, a nasal/stop right context (B, D, M) must change the pdf; S must not differ from AA.
    for k in range(3):
        assert tree.map(7, 3, 5, k) != tree.map(7, 3, 7, k)
        assert tree.map(7, 3, 5, k) == tree.map(7, 3, 8, k)


def test_serialise_load_same_pdf_for_every_context(stats):
    cfg = TreeConfig(num_leaves=45, min_leaf_count=15)
    qs = make_questions(PHONE_NAMES, SPEECH, SIL, 5, stats, cfg)
    tree, _ = build_tree(stats, qs, NCLS, cfg)
    ctx = tree.to_context_dependency()
    assert ctx.num_pdfs == tree.num_pdfs and ctx.context_width == 3 and ctx.central_position == 1
    for left, c, right, k in all_contexts():
        ok, pdf = ctx.compute([left, c, right], k)
        assert ok and pdf == tree.map(left, c, right, k)
    # Bytes survive the round trip through kaldi_hmm_gmm, and our dict form round-trips too.
    assert context_dependency_to_bytes(ctx) == tree.to_kaldi_bytes()
    again = Tree.from_dict(tree.to_dict())
    assert again.to_kaldi_bytes() == tree.to_kaldi_bytes()
    # A TransitionModel builds on it (Kaldi enumerates the tree's pdfs per phone).
    topo_text = _topo_text()
    topo = khg.HmmTopology()
    topo.read(topo_text)
    tm = khg.TransitionModel(ctx, topo)
    assert tm.num_pdfs == tree.num_pdfs


def _topo_text() -> str:
    from asr_bl.hmm.lang import make_topology_text

    return make_topology_text(SPEECH, SIL, 3, 5)


def test_monophone_tree_equals_kaldi_monophone_context_dependency():
    tree = build_monophone_tree(NCLS)
    ref = khg.monophone_context_dependency(sorted(NCLS), [0] + [NCLS[p] for p in sorted(NCLS)])
    ours = tree.to_context_dependency()
    assert ours.num_pdfs == ref.num_pdfs == sum(NCLS.values())
    for c in sorted(NCLS):
        for k in range(NCLS[c]):
            assert ours.compute([0, c, 0], k)[1] == ref.compute([c], k)[1] == tree.map(4, c, 7, k)


def test_kaldi_bytes_layout_of_a_small_tree():
    tree = Tree(roots={1: Split(0, (2,), Leaf(0), Leaf(1)), 2: Leaf(2)}, num_pdfs=3)
    b = tree.to_kaldi_bytes()
    assert b.startswith(
        b"ContextDependency \x04\x03\x00\x00\x00\x04\x01\x00\x00\x00"
        b"ToPdf TE \x04\x01\x00\x00\x00\xfc\x03\x00\x00\x00( NULL SE "
    )
    assert b"SE \x04\x00\x00\x00\x00\x04\x01\x00\x00\x00\x02\x00\x00\x00{ CE " in b
    assert b.endswith(b") EndContextDependency ")
    ctx = context_dependency_from_bytes(b)
    assert [ctx.compute([left, 1, 0], 0)[1] for left in (0, 1, 2)] == [1, 1, 0]


def test_too_few_leaves_is_a_clear_error(stats):
    cfg = TreeConfig(num_leaves=3)
    with pytest.raises(ValueError, match="num_leaves"):
        build_tree(stats, Questions(), NCLS, cfg)
