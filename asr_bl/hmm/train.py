"""GMM-HMM training: flat-start monophones, then triphones on our decision tree (Kaldi's recipe).

The loops follow Kaldi's ``steps/train_mono.sh`` and ``steps/train_deltas.sh``:

- monophones: one Gaussian per pdf at the global mean/variance, equal alignment on the training
  graphs, then EM iterations (re-aligning on a schedule) while the number of Gaussians grows
  linearly to ``total_gauss``;
- triphones: tree statistics from the previous alignments, our tree (:mod:`asr_bl.hmm.tree`),
  one Gaussian per pdf from the pooled statistics, alignments converted to the new tree
  (convert-ali), then EM with re-alignment and mixture growth, and a final alignment.

Work over utterances is split into shards, each owned by a worker process (fork) that keeps its
features, compiled training graphs and current alignments; the parent sums the statistics and
updates the model. As in Kaldi, the training graphs are compiled once without transition
probabilities and each alignment adds those of the current model (gmm-align-compiled's
``--transition-scale``/``--self-loop-scale``), so re-estimated transitions take effect. With one job everything runs in-process through the same code.

Mixture splitting is made reproducible: Kaldi's split perturbs means with an unseeded RNG, so we
split with perturbation 0 and then perturb the new pairs ourselves with a seeded RNG.
"""
import logging
import multiprocessing as mp
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.lang import Lang
from asr_bl.hmm.model import GmmHmm, convert_alignments
from asr_bl.hmm.tree import Tree, TreeConfig, TreeStats, accumulate_tree_stats, build_tree, make_questions

logger = logging.getLogger(__name__)


@dataclass
class AlignOptions:
    """Viterbi alignment options (Kaldi's align_si defaults)."""

    beam: float = 10.0
    retry_beam: float = 40.0
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1


@dataclass
class MonoConfig:
    """Monophone training (Kaldi's train_mono.sh, shortened for small data)."""

    num_iters: int = 25
    #: Iterations over which the Gaussian count grows to ``total_gauss``.
    max_iter_inc: int = 20
    total_gauss: int = 1000
    realign_iters: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23)
    power: float = 0.25
    perturb_factor: float = 0.01
    min_gaussian_occupancy: float = 3.0
    seed: int = 0
    align: AlignOptions = field(default_factory=AlignOptions)


@dataclass
class TriConfig:
    """Triphone training (Kaldi's train_deltas.sh)."""

    num_iters: int = 25
    max_iter_inc: int = 15
    total_gauss: int = 10000
    realign_iters: Tuple[int, ...] = (10, 20)
    power: float = 0.25
    perturb_factor: float = 0.01
    min_gaussian_occupancy: float = 10.0
    seed: int = 0
    tree: TreeConfig = field(default_factory=TreeConfig)
    align: AlignOptions = field(default_factory=AlignOptions)


@dataclass
class Utterance:
    """One training utterance: id, GMM features (T, D) and word ids of its transcript."""

    id: str
    feats: np.ndarray
    word_ids: List[int]


# ----------------------------------------------------------------------------------------------
# Shard worker


class ShardWorker:
    """Owns a shard of utterances: graphs, alignments, statistics. Runs in its own process."""

    def __init__(self, utts: List[Utterance], lang: Lang, index: int = 0, num_shards: int = 1) -> None:
        self.utts = utts
        self.index = index
        self.num_shards = num_shards
        self.lang = lang
        self.graphs: Dict[str, Any] = {}
        self.ali: Dict[str, np.ndarray] = {}
        self.failures: Dict[str, str] = {}
        self.model: Optional[GmmHmm] = None

    # Every public method is callable by name from the parent (see WorkerPool.call).

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
        """Flat-start alignment: a random path of the right length through each graph."""
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

    def align(self, opts: AlignOptions) -> Tuple[Dict[str, str], float, int]:
        """Viterbi re-alignment with the current model (its GMMs and its transition
        probabilities); failed utterances lose their alignment.
        Returns failures, total (scaled) path log-likelihood and frames aligned."""
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
        return failed, tot_like, frames

    def accumulate(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]:
        """GMM statistics (occupancy, Σx, Σx² per pdf and Gaussian, padded to the largest
        mixture), transition counts, total acoustic log-likelihood and frame count."""
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
            return occ, s1, s2, trans, tot_ll, frames
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
        return occ, s1, s2, trans, tot_ll, frames

    def tree_stats(self) -> Optional[TreeStats]:
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
        mine = {u.id for u in self.utts}
        self.ali = {k: np.asarray(v, dtype=np.int32) for k, v in ali.items() if k in mine}
        return len(self.ali)

    def get_alignments(self) -> Dict[str, np.ndarray]:
        return dict(self.ali)

    def get_failures(self) -> Dict[str, str]:
        return dict(self.failures)


def _worker_loop(conn: Any, worker: ShardWorker) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            break
        name, args = msg
        try:
            conn.send(("ok", getattr(worker, name)(*args)))
        except Exception as e:  # report, keep serving
            import traceback

            conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


class WorkerPool:
    """Shards of utterances, each in a forked worker process (or in-process with one job)."""

    def __init__(self, utts: List[Utterance], lang: Lang, num_jobs: int) -> None:
        num_jobs = max(1, min(num_jobs, len(utts)))
        shards: List[List[Utterance]] = [[] for _ in range(num_jobs)]
        # Balance shards by frames (largest first onto the lightest shard); deterministic.
        load = [0] * num_jobs
        for u in sorted(utts, key=lambda u: (-u.feats.shape[0], u.id)):
            k = int(np.argmin(load))
            shards[k].append(u)
            load[k] += u.feats.shape[0]
        self.workers: List[ShardWorker] = [ShardWorker(s, lang, i, num_jobs) for i, s in enumerate(shards)]
        self.procs: List[Any] = []
        self.conns: List[Any] = []
        if num_jobs > 1:
            ctx = mp.get_context("fork")
            for w in self.workers:
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_worker_loop, args=(child, w), daemon=True)
                p.start()
                child.close()
                self.procs.append(p)
                self.conns.append(parent)

    def call(self, name: str, *args: Any) -> List[Any]:
        """Run ``ShardWorker.<name>(*args)`` on every shard; results in shard order."""
        if not self.procs:
            return [getattr(w, name)(*args) for w in self.workers]
        for c in self.conns:
            c.send((name, args))
        out = []
        errors = []
        for c in self.conns:
            status, value = c.recv()
            if status == "error":
                errors.append(value)
            out.append(value)
        if errors:
            raise RuntimeError(f"worker failed in {name}:\n" + "\n".join(errors))
        return out

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        self.procs, self.conns = [], []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# Model updates


def single_gaussian(mean: np.ndarray, var: np.ndarray) -> Any:
    khg, _ = import_kaldi()
    g = khg.DiagGmm(1, mean.shape[0])
    g.set_weights(np.ones(1, dtype=np.float32))
    g.set_invvars_and_means(
        (1.0 / var)[None].astype(np.float32), mean[None].astype(np.float32)
    )
    g.compute_gconsts()
    return g


def update_model(
    model: GmmHmm,
    stats: List[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]],
    min_gaussian_occupancy: float,
    min_variance: float = 0.001,
    min_gaussian_weight: float = 1e-5,
) -> Dict[str, Any]:
    """Sum shard statistics; maximum-likelihood update of the GMMs and the transitions.

    The GMM update is Kaldi's MleDiagGmmUpdate done here in numpy (kaldi_hmm_gmm's
    ``AccumAmDiagGmm.get_acc`` returns a copy, so its accumulators cannot be filled from
    Python): weights, means and variances from the statistics, variances floored at
    ``min_variance``; components with occupancy below ``min_gaussian_occupancy`` (or weight below
    ``min_gaussian_weight``) are removed, keeping at least one per pdf.
    """
    occ = sum(s[0] for s in stats)
    s1 = sum(s[1] for s in stats)
    s2 = sum(s[2] for s in stats)
    trans = sum(s[3] for s in stats)
    tot_ll = sum(s[4] for s in stats)
    frames = sum(s[5] for s in stats)
    am = model.am
    removed = 0
    aux_gain = 0.0
    for j in range(am.num_pdfs):
        gmm = am.get_pdf(j)
        n = gmm.num_gauss
        o = occ[j, :n]
        total = float(o.sum())
        if total <= 0.0:
            continue
        old_w = np.asarray(gmm.weights, dtype=np.float64)
        old_m = np.asarray(gmm.means, dtype=np.float64)
        old_v = np.asarray(gmm.vars, dtype=np.float64)
        w = o / total
        safe = np.maximum(o, 1e-20)[:, None]
        m = s1[j, :n] / safe
        v = np.maximum(s2[j, :n] / safe - m * m, min_variance)
        upd = o >= min_gaussian_occupancy
        m = np.where(upd[:, None], m, old_m)
        v = np.where(upd[:, None], v, old_v)
        keep = upd & (w >= min_gaussian_weight)
        if not np.any(keep):
            keep = o == o.max()
            keep[np.argmax(keep)+1:] = False
        aux_gain += _aux(o, s1[j, :n], s2[j, :n], w, m, v) - _aux(o, s1[j, :n], s2[j, :n], old_w, old_m, old_v)
        if not np.all(keep):
            removed += int((~keep).sum())
            gmm.remove_components([int(i) for i in np.nonzero(~keep)[0]], False)
            w, m, v = w[keep], m[keep], v[keep]
        gmm.set_weights((w / w.sum()).astype(np.float32))
        gmm.set_invvars_and_means((1.0 / v).astype(np.float32), m.astype(np.float32))
        gmm.compute_gconsts()
    am.compute_gconsts()
    khg, _ = import_kaldi()
    t_impr, t_count = model.tm.mle_update(trans.astype(np.float64), khg.MleTransitionUpdateConfig())
    return {
        "loglike_per_frame": tot_ll / max(frames, 1),
        "frames": int(frames),
        "gmm_aux_impr_per_frame": aux_gain / max(frames, 1),
        "gauss_removed": removed,
        "trans_objf_impr_per_frame": float(t_impr) / max(float(t_count), 1.0),
        "state_occs": occ.sum(1),
    }


def _aux(o: np.ndarray, s1: np.ndarray, s2: np.ndarray, w: np.ndarray, m: np.ndarray, v: np.ndarray) -> float:
    """EM auxiliary function of diagonal-GMM parameters for the given statistics."""
    d = m.shape[1]
    logw = np.log(np.maximum(w, 1e-30))
    quad = ((s2 - 2 * m * s1 + o[:, None] * m * m) / v).sum(1)
    return float((o * (logw - 0.5 * (d * np.log(2 * np.pi) + np.log(v).sum(1)))).sum() - 0.5 * quad.sum())


def mix_up(model: GmmHmm, state_occs: np.ndarray, target: int, power: float, perturb: float, rng: np.random.Generator) -> None:
    """Grow mixtures to ``target`` Gaussians in total (Kaldi's split-by-count, occupancy^power),
    with seeded perturbation of the new components' means (see module docstring)."""
    am = model.am
    if target <= am.num_gauss:
        return
    before = [am.num_gauss_in_pdf(j) for j in range(am.num_pdfs)]
    am.split_by_count(state_occs.astype(np.float32), int(target), 0.0, float(power), 20.0)
    for j in range(am.num_pdfs):
        n0, n1 = before[j], am.num_gauss_in_pdf(j)
        if n1 == n0:
            continue
        gmm = am.get_pdf(j)
        means = np.array(gmm.means, dtype=np.float64)
        var = np.array(gmm.vars, dtype=np.float64)
        # Each new component (index >= n0) is an exact copy of an earlier one: move the pair apart.
        for k in range(n0, n1):
            same = np.nonzero(np.all(means[:k] == means[k], axis=1) & np.all(var[:k] == var[k], axis=1))[0]
            src = int(same[0]) if same.size else None
            delta = perturb * np.sqrt(var[k]) * rng.standard_normal(means.shape[1])
            means[k] += delta
            if src is not None:
                means[src] -= delta
        gmm.set_means(means.astype(np.float32))
        gmm.compute_gconsts()
    am.compute_gconsts()


# ----------------------------------------------------------------------------------------------
# Training loops


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
    pool: WorkerPool,
    model: GmmHmm,
    num_iters: int,
    realign_iters: Sequence[int],
    total_gauss: int,
    max_iter_inc: int,
    power: float,
    perturb: float,
    min_occ: float,
    align_opts: AlignOptions,
    seed: int,
    first_iter: int,
    desc: str,
) -> List[Dict[str, Any]]:
    num_gauss = model.am.num_gauss
    inc = max(0, (total_gauss - num_gauss) // max(max_iter_inc, 1))
    rng = np.random.default_rng(seed)
    log: List[Dict[str, Any]] = []
    for it in tqdm(range(first_iter, num_iters), desc=desc, unit="iter"):
        t0 = time.time()
        entry: Dict[str, Any] = {"iter": it}
        pool.call("set_model", model.to_bytes())
        if it in realign_iters:
            res = pool.call("align", align_opts)
            failed = {k: v for r in res for k, v in r[0].items()}
            entry["align_failures"] = len(failed)
            frames = sum(r[2] for r in res)
            entry["align_like_per_frame"] = sum(r[1] for r in res) / max(frames, 1)
        stats = pool.call("accumulate")
        upd = update_model(model, stats, min_occ)
        entry.update({k: v for k, v in upd.items() if k != "state_occs"})
        if it < max_iter_inc + first_iter:
            num_gauss += inc
            mix_up(model, upd["state_occs"], num_gauss, power, perturb, rng)
        entry["num_gauss"] = model.am.num_gauss
        entry["seconds"] = time.time() - t0
        logger.info("%s iter %d: %s", desc, it, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()})
        log.append(entry)
    return log


def init_mono(lang: Lang, feat_dim: int, global_mean: np.ndarray, global_var: np.ndarray) -> GmmHmm:
    """Kaldi's gmm-init-mono: monophone tree, one Gaussian per pdf at the global statistics."""
    khg, _ = import_kaldi()
    topo_text = lang.topology_text()
    topo = khg.HmmTopology()
    topo.read(topo_text)
    ctx = khg.monophone_context_dependency(lang.real_phone_ids, topo.get_phone_to_num_pdf_classes())
    tm = khg.TransitionModel(ctx, topo)
    am = khg.AmDiagGmm()
    am.init(single_gaussian(global_mean, global_var), tm.num_pdfs)
    return GmmHmm(topo_text, ctx, tm, am, None)


def _final_alignment(pool: "WorkerPool", model: GmmHmm, align_config) -> Tuple[Dict[str, Any], Dict, Dict]:
    """Align every utterance with the final model; its log entry, alignments and failures."""
    pool.call("set_model", model.to_bytes())
    res = pool.call("align", align_config)
    frames = sum(r[2] for r in res)
    stats = pool.call("accumulate")
    log_entry = {
        "iter": "final_align",
        "align_like_per_frame": sum(r[1] for r in res) / max(frames, 1),
        "acoustic_loglike_per_frame": sum(x[4] for x in stats) / max(sum(x[5] for x in stats), 1),
    }
    ali = {k: v for r in pool.call("get_alignments") for k, v in r.items()}
    failures = {k: v for r in pool.call("get_failures") for k, v in r.items()}
    return log_entry, ali, failures


def train_mono(utts: List[Utterance], lang: Lang, config: MonoConfig, num_jobs: int = 1) -> TrainResult:
    """Flat-start monophone training; returns the model, final alignments and failures."""
    allx = np.concatenate([u.feats for u in utts]).astype(np.float64)
    mean, var = allx.mean(0), np.maximum(allx.var(0), 1e-3)
    model = init_mono(lang, allx.shape[1], mean, var)
    log: List[Dict[str, Any]] = []
    with WorkerPool(utts, lang, num_jobs) as pool:
        pool.call("set_model", model.to_bytes())
        fails = pool.call("compile_graphs", config.align)
        fails += pool.call("equal_align", config.seed)
        n_fail = sum(len(f) for f in fails)
        logger.info("mono: equal alignment; %d utterances failed", n_fail)
        # Iteration 0: estimate from the equal alignments (Kaldi's gmm-est after align-equal).
        log = _em_iterations(
            pool, model, config.num_iters, config.realign_iters, config.total_gauss, config.max_iter_inc,
            config.power, config.perturb_factor, config.min_gaussian_occupancy, config.align, config.seed,
            0, "mono",
        )
        # Final alignment with the final model.
        final_log, ali, failures = _final_alignment(pool, model, config.align)
        log.append(final_log)
    return TrainResult(model, ali, failures, log)


def init_tri_from_stats(prev: GmmHmm, tree: Tree, stats: TreeStats, var_floor: float) -> GmmHmm:
    """Kaldi's gmm-init-model: a model on the new tree, one Gaussian per pdf from tree stats."""
    khg, _ = import_kaldi()
    ctx = tree.to_context_dependency()
    topo = khg.HmmTopology()
    topo.read(prev.topo_text)
    tm = khg.TransitionModel(ctx, topo)
    pdf_of_event = tree.map_events(stats.events)
    if np.any(pdf_of_event < 0):
        raise RuntimeError("tree does not cover every event of the statistics")
    n = tree.num_pdfs
    counts = np.bincount(pdf_of_event, weights=stats.counts, minlength=n)
    sums = np.zeros((n, stats.dim))
    sq = np.zeros((n, stats.dim))
    np.add.at(sums, pdf_of_event, stats.sums)
    np.add.at(sq, pdf_of_event, stats.sumsq)
    am = khg.AmDiagGmm()
    gvar = np.maximum(stats.sumsq.sum(0) / stats.counts.sum() - (stats.sums.sum(0) / stats.counts.sum()) ** 2, 1e-3)
    for j in range(n):
        if counts[j] <= 0:  # unseen pdf (cannot happen with min_leaf_count > 0): global Gaussian
            m, v = stats.sums.sum(0) / stats.counts.sum(), gvar
        else:
            m = sums[j] / counts[j]
            v = np.maximum(sq[j] / counts[j] - m * m, var_floor)
        am.add_pdf(single_gaussian(m, v))
    return GmmHmm(prev.topo_text, ctx, tm, am, tree)


def train_tri(
    utts: List[Utterance],
    lang: Lang,
    prev: GmmHmm,
    prev_ali: Dict[str, np.ndarray],
    config: TriConfig,
    num_jobs: int = 1,
) -> Tuple[TrainResult, Dict[str, Any]]:
    """Triphone training from a previous model's alignments. Returns the result and the tree summary."""
    with WorkerPool(utts, lang, num_jobs) as pool:
        pool.call("set_model", prev.to_bytes())
        n = sum(pool.call("set_alignments", prev_ali))
        logger.info("tri: %d of %d utterances have alignments from the previous model", n, len(utts))
        parts = [p for p in pool.call("tree_stats") if p is not None]
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
        pool.call("convert", model.to_bytes())
        pool.call("set_model", model.to_bytes())
        pool.call("compile_graphs", config.align)
        log = _em_iterations(
            pool, model, config.num_iters + 1, config.realign_iters, config.total_gauss, config.max_iter_inc,
            config.power, config.perturb_factor, config.min_gaussian_occupancy, config.align, config.seed,
            1, "tri",
        )
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
    with WorkerPool(utts, lang, num_jobs) as pool:
        pool.call("set_model", model.to_bytes())
        if alignments is None:
            pool.call("compile_graphs", opts)
            pool.call("align", opts)
        else:
            pool.call("set_alignments", alignments)
        stats = pool.call("accumulate")
        ali = {k: v for r in pool.call("get_alignments") for k, v in r.items()}
        failures = {k: v for r in pool.call("get_failures") for k, v in r.items()}
    tot = sum(s[4] for s in stats)
    frames = sum(s[5] for s in stats)
    return ali, failures, tot / max(frames, 1)
