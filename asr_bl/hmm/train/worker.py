"""The GMM shard worker: one shard of utterances with its graphs and alignments, in its own process.

Work over utterances is split into shards of about equal frame count (:func:`shard_pool`), each
owned by a :class:`ShardWorker` that keeps its features, compiled training graphs and current
alignments for the whole run; the parent calls its methods through
:class:`asr_bl.parallel.ShardPool` by function (``pool.map(ShardWorker.align, opts)``), and only
small things cross the pipe: a model's bytes going in, :class:`AlignResult`, :class:`GmmStats`,
tree statistics and alignments coming out. With one job everything runs in-process through the
same code.

As in Kaldi, the training graphs are compiled once without transition probabilities and each
alignment adds those of the current model (gmm-align-compiled's ``--transition-scale``/
``--self-loop-scale``), so re-estimated transitions take effect.

Processes are forked: a fork shares the shard's features with the child instead of pickling
them, and the workers run only kaldi_hmm_gmm and numpy, never torch, so the hang of torch's
OpenMP in a forked child (see :mod:`asr_bl.parallel`; why :mod:`asr_bl.hmm.feats` uses spawn)
does not arise, even when the parent has computed features with torch first (tested).
"""
import zlib
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.lang import Lang
from asr_bl.hmm.model import GmmHmm, convert_alignments
from asr_bl.hmm.tree import TreeStats, accumulate_tree_stats
from asr_bl.parallel import ShardPool, balanced_shards

__all__ = ["AlignOptions", "AlignResult", "GmmStats", "ShardWorker", "Utterance", "shard_pool"]


@dataclass
class AlignOptions:
    """Viterbi alignment options (Kaldi's align_si defaults)."""

    beam: float = 10.0
    retry_beam: float = 40.0
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1


@dataclass
class Utterance:
    """One training utterance: id, GMM features (T, D) and word ids of its transcript."""

    id: str
    feats: np.ndarray
    word_ids: List[int]


class _PerFrame:
    """``loglike`` over ``frames`` (for the named results below)."""

    loglike: float
    frames: int

    @property
    def loglike_per_frame(self) -> float:
        return self.loglike / max(self.frames, 1)


@dataclass
class AlignResult(_PerFrame):
    """What one Viterbi pass over a shard (or, summed, over all shards) gives.

    ``failures``: utterance id -> reason, for utterances that lost their alignment;
    ``loglike``: total (acoustically scaled) path log-likelihood; ``frames``: frames aligned.
    """

    failures: Dict[str, str]
    loglike: float
    frames: int

    @staticmethod
    def total(parts: Sequence["AlignResult"]) -> "AlignResult":
        """The shards' results summed (failures merged), in shard order."""
        return AlignResult(
            failures={k: v for p in parts for k, v in p.failures.items()},
            loglike=sum(p.loglike for p in parts),
            frames=sum(p.frames for p in parts),
        )


@dataclass
class GmmStats(_PerFrame):
    """GMM and transition statistics of aligned frames (Kaldi's gmm-acc-stats-ali).

    ``occupancy`` (P, G), ``sums`` (P, G, D) and ``sumsq`` (P, G, D) float64: per pdf and Gaussian
    the posterior-weighted count, Σx and Σx² (padded with zeros to the largest mixture, G);
    ``transitions`` (num_transition_ids + 1,) float64: counts per transition-id (index 0 unused);
    ``loglike``: total acoustic log-likelihood of the frames; ``frames``: their number.
    """

    occupancy: np.ndarray
    sums: np.ndarray
    sumsq: np.ndarray
    transitions: np.ndarray
    loglike: float
    frames: int

    @staticmethod
    def total(parts: Sequence["GmmStats"]) -> "GmmStats":
        """The shards' statistics summed, in shard order (so the sums are reproducible)."""
        return GmmStats(**{f.name: sum(getattr(p, f.name) for p in parts) for f in fields(GmmStats)})


class ShardWorker:
    """Owns a shard of utterances: graphs, alignments, statistics. Runs in its own process.

    The parent drives it through :class:`~asr_bl.parallel.ShardPool` by method
    (``pool.map(ShardWorker.accumulate)``); every method works as well in-process.
    """

    def __init__(self, utts: List[Utterance], lang: Lang, index: int = 0, num_shards: int = 1) -> None:
        self.utts = utts
        self.index = index
        self.num_shards = num_shards
        self.lang = lang
        self.graphs: Dict[str, Any] = {}
        self.ali: Dict[str, np.ndarray] = {}
        self.failures: Dict[str, str] = {}
        self.model: Optional[GmmHmm] = None

    def set_model(self, model_bytes: bytes) -> None:
        self.model = GmmHmm.from_bytes(model_bytes)

    def compile_graphs(self, opts: AlignOptions) -> Dict[str, str]:
        """Compile training graphs for the current model's tree; returns failures.

        The graphs carry no transition probabilities (Kaldi's compile-train-graphs default of
        transition and self-loop scale 0): the transition model is re-estimated every iteration,
        so :meth:`align` adds the *current* model's probabilities to a copy of each graph, as
        gmm-align-compiled does. ``opts`` is accepted for symmetry with :meth:`align`; its scales
        are used there."""
        khg, _ = import_kaldi()
        assert self.model is not None
        gc_opts = khg.TrainingGraphCompilerOptions(transition_scale=0.0, self_loop_scale=0.0)
        compiler = khg.TrainingGraphCompiler(
            self.model.tm, self.model.ctx_dep, self.lang.lexicon_fst(), self.lang.disambig_phone_ids, gc_opts
        )
        self.graphs = {}
        failed = {}
        for u in self.utts:
            try:
                g = compiler.compile_graph_from_text(u.word_ids)
            except Exception as e:  # a transcript the lexicon cannot express
                failed[u.id] = f"graph compilation failed: {e}"
                continue
            if g.num_states == 0:
                failed[u.id] = "empty training graph"
                continue
            self.graphs[u.id] = g
        self.failures.update(failed)
        return failed

    def alignment_graph(self, utt_id: str, opts: AlignOptions) -> Optional[Any]:
        """The utterance's training graph with the current model's transition log-probabilities
        added (scaled by ``opts.transition_scale`` / ``opts.self_loop_scale``), as a new FST;
        the stored graph is left untouched. ``None`` if the utterance has no graph."""
        khg, kaldifst = import_kaldi()
        assert self.model is not None
        g = self.graphs.get(utt_id)
        if g is None:
            return None
        scored = kaldifst.StdVectorFst(g)
        # The compiled graphs hold transition-ids and epsilons only (disambiguation symbols are
        # removed by the compiler), hence no disambiguation symbols to skip.
        khg.add_transition_probs(self.model.tm, [], opts.transition_scale, opts.self_loop_scale, scored)
        return scored

    def equal_align(self, seed: int) -> Dict[str, str]:
        """Flat-start alignment: a random path of the right length through each graph; returns failures."""
        _, kaldifst = import_kaldi()
        failed = {}
        for u in self.utts:
            g = self.graphs.get(u.id)
            if g is None:
                continue
            rand_seed = (zlib.crc32(u.id.encode()) + seed) % (2 ** 31)
            ok, lin = kaldifst.equal_align(g, u.feats.shape[0], rand_seed)
            if not ok:
                failed[u.id] = f"equal alignment impossible ({u.feats.shape[0]} frames too few for the transcript)"
                continue
            ok, ilabels, _, _ = kaldifst.get_linear_symbol_sequence(lin)
            if not ok or len(ilabels) != u.feats.shape[0]:
                failed[u.id] = "equal alignment produced a wrong length"
                continue
            self.ali[u.id] = np.asarray(ilabels, dtype=np.int32)
        self.failures.update(failed)
        return failed

    def align(self, opts: AlignOptions) -> AlignResult:
        """Viterbi re-alignment with the current model (its GMMs and its transition
        probabilities); failed utterances lose their alignment."""
        khg, _ = import_kaldi()
        assert self.model is not None
        cfg = khg.AlignConfig(beam=opts.beam, retry_beam=opts.retry_beam, careful=False)
        failed = {}
        tot_like, frames = 0.0, 0
        # Shards are balanced, so the first shard's bar shows the progress of all of them.
        desc = f"align (shard 1/{self.num_shards})" if self.num_shards > 1 else "align"
        for u in tqdm(self.utts, desc=desc, unit="utt", leave=False, disable=self.index != 0 or len(self.utts) < 500):
            g = self.alignment_graph(u.id, opts)
            if g is None:
                continue
            dec = khg.DecodableAmDiagGmmScaled(self.model.am, self.model.tm, u.feats, opts.acoustic_scale)
            res = khg.align_utterance_wrapper(cfg, u.id, opts.acoustic_scale, g, dec, 0, 0, 0, 0.0, 0)
            num_done, num_err, _, like, nfr, ali, _ = res
            if num_done != 1 or len(ali) != u.feats.shape[0]:
                failed[u.id] = f"no alignment within beam {opts.retry_beam}"
                self.ali.pop(u.id, None)
                continue
            self.ali[u.id] = np.asarray(ali, dtype=np.int32)
            tot_like += like
            frames += nfr
        self.failures.update(failed)
        for uid in list(self.failures):
            if uid in self.ali:  # aligned now
                del self.failures[uid]
        return AlignResult(failed, tot_like, frames)

    def accumulate(self) -> GmmStats:
        """GMM and transition statistics of the shard's current alignments under the current model."""
        assert self.model is not None
        am, tables = self.model.am, self.model.tables
        npdf = am.num_pdfs
        gmax = max(am.num_gauss_in_pdf(j) for j in range(npdf))
        dim = am.dim
        occ = np.zeros((npdf, gmax))
        s1 = np.zeros((npdf, gmax, dim))
        s2 = np.zeros((npdf, gmax, dim))
        trans = np.zeros(self.model.tm.num_transition_ids + 1)
        tot_ll, frames = 0.0, 0
        xs, ps = [], []
        for u in self.utts:
            ali = self.ali.get(u.id)
            if ali is None:
                continue
            trans += np.bincount(ali, minlength=trans.shape[0])
            xs.append(u.feats)
            ps.append(tables.pdf[ali])
            frames += int(ali.shape[0])
        if not xs:
            return GmmStats(occ, s1, s2, trans, tot_ll, frames)
        # All frames of the shard grouped by pdf: one likelihood call per pdf.
        pdfs = np.concatenate(ps)
        order = np.argsort(pdfs, kind="stable")
        feats = np.concatenate(xs)[order]
        sorted_pdfs = pdfs[order]
        bounds = np.concatenate([[0], np.nonzero(np.diff(sorted_pdfs))[0] + 1, [len(order)]])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            j = int(sorted_pdfs[lo])
            x = feats[lo:hi]
            ll = am.get_pdf(j).log_likelihoods_matrix(x).astype(np.float64)  # (n, G)
            m = ll.max(1, keepdims=True)
            tot = m[:, 0] + np.log(np.exp(ll - m).sum(1))
            post = np.exp(ll - tot[:, None])
            g = post.shape[1]
            x64 = x.astype(np.float64)
            occ[j, :g] += post.sum(0)
            s1[j, :g] += post.T @ x64
            s2[j, :g] += post.T @ (x64 * x64)
            tot_ll += float(tot.sum())
        return GmmStats(occ, s1, s2, trans, tot_ll, frames)

    def tree_stats(self) -> Optional[TreeStats]:
        """Tree statistics of the shard's current alignments (None when nothing is aligned)."""
        assert self.model is not None
        tables = self.model.tables
        phones, classes, starts, feats = [], [], [], []
        for u in self.utts:
            ali = self.ali.get(u.id)
            if ali is None:
                continue
            phones.append(tables.phone[ali])
            classes.append(tables.pdf_class[ali])
            starts.append(tables.phone_starts(ali))
            feats.append(u.feats)
        if not phones:
            return None
        return accumulate_tree_stats(phones, classes, starts, feats)

    def convert(self, new_model_bytes: bytes) -> None:
        """Convert the stored alignments to a new model (tree) and make it current."""
        assert self.model is not None
        new = GmmHmm.from_bytes(new_model_bytes)
        assert new.tree is not None
        old_tables, new_tables = self.model.tables, new.tables
        keys = sorted(self.ali)
        converted = convert_alignments([self.ali[k] for k in keys], old_tables, new_tables, new.tree)
        self.ali = dict(zip(keys, converted))
        self.model = new

    def set_alignments(self, ali: Dict[str, np.ndarray]) -> int:
        """Take the alignments of this shard's utterances from ``ali``; returns how many."""
        mine = {u.id for u in self.utts}
        self.ali = {k: np.asarray(v, dtype=np.int32) for k, v in ali.items() if k in mine}
        return len(self.ali)

    def get_alignments(self) -> Dict[str, np.ndarray]:
        return dict(self.ali)

    def get_failures(self) -> Dict[str, str]:
        return dict(self.failures)


def shard_pool(utts: List[Utterance], lang: Lang, num_jobs: int) -> ShardPool[ShardWorker]:
    """``num_jobs`` shards of about equal frame count (deterministic: heaviest first onto the
    lightest shard, ties by utterance id), each a :class:`ShardWorker` in a forked process
    (in-process with one job)."""
    shards = balanced_shards(utts, weight=lambda u: u.feats.shape[0], num_shards=num_jobs, key=lambda u: u.id)
    return ShardPool([ShardWorker(s, lang, i, len(shards)) for i, s in enumerate(shards)], start_method="fork")
