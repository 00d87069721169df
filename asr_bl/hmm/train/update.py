"""GMM estimation: model initialisation, the maximum-likelihood update, mixture growth.

Kaldi's gmm-init-mono (:func:`init_mono`), gmm-init-model (:func:`init_tri_from_stats`), gmm-est
(:func:`update_model`, the diagonal-GMM and transition update done in numpy from
:class:`~asr_bl.hmm.train.worker.GmmStats`) and gmm-mixup (:func:`mix_up`).

Mixture splitting is made reproducible: Kaldi's split perturbs means with an unseeded RNG, so we
split with perturbation 0 and then perturb the new pairs ourselves with a seeded RNG.
"""
from typing import Any, Dict

import numpy as np

from asr_bl._kaldi import import_kaldi
from asr_bl.hmm.lang import Lang
from asr_bl.hmm.model import GmmHmm
from asr_bl.hmm.train.worker import GmmStats
from asr_bl.hmm.tree import Tree, TreeStats

__all__ = ["init_mono", "init_tri_from_stats", "mix_up", "single_gaussian", "update_model"]


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
    stats: GmmStats,
    min_gaussian_occupancy: float,
    min_variance: float = 0.001,
    min_gaussian_weight: float = 1e-5,
) -> Dict[str, Any]:
    """Maximum-likelihood update of the GMMs and the transitions from statistics summed over
    the shards (:meth:`GmmStats.total`), in place; returns the iteration's log entries.

    The GMM update is Kaldi's MleDiagGmmUpdate done here in numpy (kaldi_hmm_gmm's
    ``AccumAmDiagGmm.get_acc`` returns a copy, so its accumulators cannot be filled from
    Python): weights, means and variances from the statistics, variances floored at
    ``min_variance``; components with occupancy below ``min_gaussian_occupancy`` (or weight below
    ``min_gaussian_weight``) are removed, keeping at least one per pdf.
    """
    occ, s1, s2, trans = stats.occupancy, stats.sums, stats.sumsq, stats.transitions
    tot_ll, frames = stats.loglike, stats.frames
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


def mix_up(
    model: GmmHmm, state_occs: np.ndarray, target: int, power: float, perturb: float, rng: np.random.Generator
) -> None:
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
