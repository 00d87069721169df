"""Options of the decision-tree build (:func:`asr_bl.hmm.tree.build_tree`, :func:`~asr_bl.hmm.tree.make_questions`)."""
from dataclasses import dataclass


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
