"""Our phonetic decision tree: statistics, questions, the tree and its Kaldi format, the builder.

kaldi-hmm-gmm binds no tree building, so this package does what Kaldi's ``acc-tree-stats``,
``cluster-phones``, ``compile-questions`` and ``build-tree`` do, written from scratch in numpy,
one layer per module:

1. :mod:`~asr_bl.hmm.tree.stats`: :func:`accumulate_tree_stats`, for every seen event (left phone,
   central phone, right phone, pdf-class) the Gaussian sufficient statistics (count, Σx, Σx²) of
   the frames aligned to it; :func:`gauss_objf`, Kaldi's ``GaussClusterable::Objf`` (diagonal,
   variance floored), the objective of everything below.
2. :mod:`~asr_bl.hmm.tree.questions`: phone sets for the left/right context from ARPAbet phonetic
   classes (:data:`ARPABET_CLASSES`) and from a top-down likelihood clustering of the phones' own
   statistics (:func:`cluster_phones`, like Kaldi's cluster-phones); pdf-class questions
   ``{0}, {0,1}, ...`` so that the HMM states of a phone share one root.
3. :mod:`~asr_bl.hmm.tree.context_tree`: the :class:`Tree` and :meth:`Tree.to_kaldi_bytes`, Kaldi's
   binary ``ContextDependency`` (TE/SE/CE event maps, see ``docs/tree_format.md``), which
   :meth:`Tree.to_context_dependency` loads into kaldi_hmm_gmm.
4. :mod:`~asr_bl.hmm.tree.build`: :func:`build_tree`, one root per phone (shared by its
   pdf-classes); greedy splitting, best likelihood gain first, each side holding at least
   ``min_leaf_count`` frames, to ``split_overshoot`` x ``num_leaves`` leaves; then the leaves of
   each root are merged bottom-up, cheapest likelihood loss first (Kaldi's cluster step), down to
   exactly ``num_leaves`` pdfs (fewer only when the data run out of allowed splits).

Its options are :class:`TreeConfig` (:mod:`~asr_bl.hmm.tree.config`). Every public name is
importable from ``asr_bl.hmm.tree`` itself.
"""
from asr_bl.hmm.tree.build import build_tree
from asr_bl.hmm.tree.config import TreeConfig
from asr_bl.hmm.tree.context_tree import (
    Leaf,
    Node,
    Split,
    Tree,
    build_monophone_tree,
    context_dependency_from_bytes,
    context_dependency_to_bytes,
)
from asr_bl.hmm.tree.questions import ARPABET_CLASSES, Questions, cluster_phones, make_questions
from asr_bl.hmm.tree.stats import (
    CENTRAL_POSITION,
    CONTEXT_WIDTH,
    EVENT_COLUMN,
    KEY_PDF_CLASS,
    TreeStats,
    accumulate_tree_stats,
    gauss_objf,
)

__all__ = [
    "ARPABET_CLASSES",
    "CENTRAL_POSITION",
    "CONTEXT_WIDTH",
    "EVENT_COLUMN",
    "KEY_PDF_CLASS",
    "Leaf",
    "Node",
    "Questions",
    "Split",
    "Tree",
    "TreeConfig",
    "TreeStats",
    "accumulate_tree_stats",
    "build_monophone_tree",
    "build_tree",
    "cluster_phones",
    "context_dependency_from_bytes",
    "context_dependency_to_bytes",
    "gauss_objf",
    "make_questions",
]
