"""GMM-HMM training (Kaldi's train_mono.sh / train_deltas.sh), one layer per module:

- :mod:`~asr_bl.hmm.train.worker`: :class:`ShardWorker`, one shard of utterances (features,
  training graphs, alignments) in a worker process of :class:`asr_bl.parallel.ShardPool`, and its
  named results (:class:`AlignResult`, :class:`GmmStats`);
- :mod:`~asr_bl.hmm.train.update`: model initialisation, the maximum-likelihood GMM/transition
  update, seeded mixture growth;
- :mod:`~asr_bl.hmm.train.loops`: :func:`train_mono`, :func:`train_tri`, :func:`align_with_model`
  and their configurations (:class:`MonoConfig`, :class:`TriConfig`).

Every public name is importable from ``asr_bl.hmm.train`` itself.
"""
from asr_bl.hmm.train.loops import (
    GAUSS_PER_LEAF,
    KALDI_MONO_REALIGN_ITERS,
    KALDI_TRI_REALIGN_ITERS,
    EmConfig,
    MonoConfig,
    TrainResult,
    TriConfig,
    align_with_model,
    train_mono,
    train_tri,
)
from asr_bl.hmm.train.update import init_mono, init_tri_from_stats, mix_up, single_gaussian, update_model
from asr_bl.hmm.train.worker import AlignOptions, AlignResult, GmmStats, ShardWorker, Utterance, shard_pool

__all__ = [
    "GAUSS_PER_LEAF",
    "KALDI_MONO_REALIGN_ITERS",
    "KALDI_TRI_REALIGN_ITERS",
    "AlignOptions",
    "AlignResult",
    "EmConfig",
    "GmmStats",
    "MonoConfig",
    "ShardWorker",
    "TrainResult",
    "TriConfig",
    "Utterance",
    "align_with_model",
    "init_mono",
    "init_tri_from_stats",
    "mix_up",
    "shard_pool",
    "single_gaussian",
    "train_mono",
    "train_tri",
    "update_model",
]
