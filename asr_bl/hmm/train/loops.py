"""GMM-HMM training loops: flat-start monophones, triphones on our tree, alignment (Kaldi's recipe).

The loops follow Kaldi's ``steps/train_mono.sh`` and ``steps/train_deltas.sh``:

- monophones: one Gaussian per pdf at the global mean/variance, equal alignment on the training
  graphs, then EM iterations (re-aligning on a schedule) while the number of Gaussians grows
  linearly to ``total_gauss``;
- triphones: tree statistics from the previous alignments, our tree (:mod:`asr_bl.hmm.tree`),
  one Gaussian per pdf from the pooled statistics, alignments converted to the new tree
  (convert-ali), then EM with re-alignment and mixture growth, and a final alignment.

The shards live in worker processes (:mod:`asr_bl.hmm.train.worker`); the parent sums their
statistics and updates the model (:mod:`asr_bl.hmm.train.update`).

The configurations hold the library's defaults, which the command line (``asr_bl-gmm``) takes as
its own: the realignment schedules are Kaldi's (``realign_iters`` of train_mono.sh and
train_deltas.sh); iterations at or past ``num_iters`` are simply never reached, as in Kaldi.
"""
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from asr_bl.hmm.lang import Lang
from asr_bl.hmm.model import GmmHmm
from asr_bl.hmm.train.update import init_mono, init_tri_from_stats, mix_up, update_model
from asr_bl.hmm.train.worker import AlignOptions, AlignResult, GmmStats, ShardWorker, Utterance, shard_pool
from asr_bl.hmm.tree import TreeConfig, TreeStats, build_tree, make_questions
from asr_bl.parallel import ShardPool

logger = logging.getLogger(__name__)

__all__ = ["EmConfig", "MonoConfig", "TrainResult", "TriConfig", "align_with_model", "train_mono", "train_tri"]

#: Kaldi's steps/train_mono.sh ``realign_iters`` (its num_iters is 40).
KALDI_MONO_REALIGN_ITERS: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)
#: Kaldi's steps/train_deltas.sh ``realign_iters`` (its num_iters is 35).
KALDI_TRI_REALIGN_ITERS: Tuple[int, ...] = (10, 20, 30)
#: Triphone Gaussians per tree leaf when :attr:`TriConfig.total_gauss` is 0.
GAUSS_PER_LEAF = 5


@dataclass
class EmConfig:
    """The options monophone and triphone EM share (Kaldi's train_mono.sh / train_deltas.sh)."""

    num_iters: int = 25
    #: Iterations over which the Gaussian count grows linearly to the total.
    max_iter_inc: int = 20
    total_gauss: int = 1000
    #: Iterations that re-align before accumulating.
    realign_iters: Tuple[int, ...] = ()
    #: Mixture growth: Gaussians per pdf ~ occupancy ** power (gmm-mixup's --power).
    power: float = 0.25
    #: Mean perturbation of split Gaussians, in standard deviations (seeded, see update.mix_up).
    perturb_factor: float = 0.01
    #: Gaussians with less occupancy are not updated (and removed), Kaldi's --min-gaussian-occupancy.
    min_gaussian_occupancy: float = 3.0
    seed: int = 0
    align: AlignOptions = field(default_factory=AlignOptions)


@dataclass
class MonoConfig(EmConfig):
    """Monophone training (Kaldi's train_mono.sh, shortened for small data: 25 iterations, not 40).

    ``realign_iters`` (0-based iterations) is Kaldi's schedule."""

    realign_iters: Tuple[int, ...] = KALDI_MONO_REALIGN_ITERS


@dataclass
class TriConfig(EmConfig):
    """Triphone training (Kaldi's train_deltas.sh; 25 iterations, not 35).

    ``realign_iters`` (1-based iterations, as in Kaldi) is Kaldi's schedule; ``total_gauss`` 0
    means :data:`GAUSS_PER_LEAF` per leaf of ``tree.num_leaves`` (:attr:`target_gauss`: 10000 with
    the default 2000 leaves)."""

    max_iter_inc: int = 15
    total_gauss: int = 0
    realign_iters: Tuple[int, ...] = KALDI_TRI_REALIGN_ITERS
    min_gaussian_occupancy: float = 10.0
    tree: TreeConfig = field(default_factory=TreeConfig)

    @property
    def target_gauss(self) -> int:
        """The Gaussians in total that training grows to: ``total_gauss``, or 5 per leaf when 0."""
        return self.total_gauss or GAUSS_PER_LEAF * self.tree.num_leaves


@dataclass
class TrainResult:
    model: GmmHmm
    alignments: Dict[str, np.ndarray]
    failures: Dict[str, str]
    log: List[Dict[str, Any]]

    @property
    def final_loglike_per_frame(self) -> float:
        """Acoustic log-likelihood per frame of the final alignments under the final model."""
        return float(self.log[-1]["acoustic_loglike_per_frame"])


def _em_iterations(
    pool: ShardPool[ShardWorker],
    model: GmmHmm,
    config: EmConfig,
    total_gauss: int,
    first_iter: int,
    desc: str,
) -> List[Dict[str, Any]]:
    """EM iterations ``first_iter .. config.num_iters + first_iter - 1`` (re-aligning on the
    schedule, growing the mixtures to ``total_gauss``); their log entries."""
    realign_iters, max_iter_inc, align_opts = config.realign_iters, config.max_iter_inc, config.align
    num_gauss = model.am.num_gauss
    inc = max(0, (total_gauss - num_gauss) // max(max_iter_inc, 1))
    rng = np.random.default_rng(config.seed)
    log: List[Dict[str, Any]] = []
    for it in tqdm(range(first_iter, config.num_iters + first_iter), desc=desc, unit="iter"):
        t0 = time.time()
        entry: Dict[str, Any] = {"iter": it}
        pool.map(ShardWorker.set_model, model.to_bytes())
        if it in realign_iters:
            aligned = AlignResult.total(pool.map(ShardWorker.align, align_opts))
            entry["align_failures"] = len(aligned.failures)
            entry["align_like_per_frame"] = aligned.loglike_per_frame
        upd = update_model(model, GmmStats.total(pool.map(ShardWorker.accumulate)), config.min_gaussian_occupancy)
        entry.update({k: v for k, v in upd.items() if k != "state_occs"})
        if it < max_iter_inc + first_iter:
            num_gauss += inc
            mix_up(model, upd["state_occs"], num_gauss, config.power, config.perturb_factor, rng)
        entry["num_gauss"] = model.am.num_gauss
        entry["seconds"] = time.time() - t0
        rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()}
        logger.info("%s iter %d: %s", desc, it, rounded)
        log.append(entry)
    return log


def _collect(pool: ShardPool[ShardWorker]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Every shard's current alignments and failures, merged in shard order."""
    ali = {k: v for r in pool.map(ShardWorker.get_alignments) for k, v in r.items()}
    failures = {k: v for r in pool.map(ShardWorker.get_failures) for k, v in r.items()}
    return ali, failures


def _final_alignment(
    pool: ShardPool[ShardWorker], model: GmmHmm, align_config: AlignOptions
) -> Tuple[Dict[str, Any], Dict, Dict]:
    """Align every utterance with the final model; its log entry, alignments and failures."""
    pool.map(ShardWorker.set_model, model.to_bytes())
    aligned = AlignResult.total(pool.map(ShardWorker.align, align_config))
    stats = GmmStats.total(pool.map(ShardWorker.accumulate))
    log_entry = {
        "iter": "final_align",
        "align_like_per_frame": aligned.loglike_per_frame,
        "acoustic_loglike_per_frame": stats.loglike_per_frame,
    }
    ali, failures = _collect(pool)
    return log_entry, ali, failures


def train_mono(utts: List[Utterance], lang: Lang, config: MonoConfig, num_jobs: int = 1) -> TrainResult:
    """Flat-start monophone training; returns the model, final alignments and failures."""
    allx = np.concatenate([u.feats for u in utts]).astype(np.float64)
    mean, var = allx.mean(0), np.maximum(allx.var(0), 1e-3)
    model = init_mono(lang, allx.shape[1], mean, var)
    log: List[Dict[str, Any]] = []
    with shard_pool(utts, lang, num_jobs) as pool:
        pool.map(ShardWorker.set_model, model.to_bytes())
        fails = pool.map(ShardWorker.compile_graphs, config.align)
        fails += pool.map(ShardWorker.equal_align, config.seed)
        n_fail = sum(len(f) for f in fails)
        logger.info("mono: equal alignment; %d utterances failed", n_fail)
        # Iteration 0: estimate from the equal alignments (Kaldi's gmm-est after align-equal).
        log = _em_iterations(pool, model, config, config.total_gauss, 0, "mono")
        # Final alignment with the final model.
        final_log, ali, failures = _final_alignment(pool, model, config.align)
        log.append(final_log)
    return TrainResult(model, ali, failures, log)


def train_tri(
    utts: List[Utterance],
    lang: Lang,
    prev: GmmHmm,
    prev_ali: Dict[str, np.ndarray],
    config: TriConfig,
    num_jobs: int = 1,
) -> Tuple[TrainResult, Dict[str, Any]]:
    """Triphone training from a previous model's alignments. Returns the result and the tree summary."""
    with shard_pool(utts, lang, num_jobs) as pool:
        pool.map(ShardWorker.set_model, prev.to_bytes())
        n = sum(pool.map(ShardWorker.set_alignments, prev_ali))
        logger.info("tri: %d of %d utterances have alignments from the previous model", n, len(utts))
        parts = [p for p in pool.map(ShardWorker.tree_stats) if p is not None]
        stats = TreeStats.merge(parts)
        t0 = time.time()
        questions = make_questions(
            lang.phones, lang.nonsilence_phone_ids, lang.silence_phone_ids,
            max(prev.topo.get_phone_to_num_pdf_classes()), stats, config.tree,
        )
        ncls = prev.topo.get_phone_to_num_pdf_classes()
        tree, summary = build_tree(stats, questions, {p: ncls[p] for p in lang.real_phone_ids}, config.tree)
        summary["seconds"] = time.time() - t0
        model = init_tri_from_stats(prev, tree, stats, config.tree.var_floor)
        pool.map(ShardWorker.convert, model.to_bytes())
        pool.map(ShardWorker.set_model, model.to_bytes())
        pool.map(ShardWorker.compile_graphs, config.align)
        log = _em_iterations(pool, model, config, config.target_gauss, 1, "tri")
        final_log, ali, failures = _final_alignment(pool, model, config.align)
        log.append(final_log)
    return TrainResult(model, ali, failures, log), summary


def align_with_model(
    utts: List[Utterance],
    lang: Lang,
    model: GmmHmm,
    opts: AlignOptions,
    num_jobs: int = 1,
    alignments: Optional[Dict[str, np.ndarray]] = None,
) -> Tuple[Dict[str, np.ndarray], Dict[str, str], float]:
    """Align utterances with a trained model. Returns alignments, failures and the acoustic
    log-likelihood per frame of the alignments. With ``alignments`` (made by this very model,
    e.g. its training's final alignments) nothing is re-aligned: they are only scored."""
    with shard_pool(utts, lang, num_jobs) as pool:
        pool.map(ShardWorker.set_model, model.to_bytes())
        if alignments is None:
            pool.map(ShardWorker.compile_graphs, opts)
            pool.map(ShardWorker.align, opts)
        else:
            pool.map(ShardWorker.set_alignments, alignments)
        stats = GmmStats.total(pool.map(ShardWorker.accumulate))
        ali, failures = _collect(pool)
    return ali, failures, stats.loglike_per_frame
