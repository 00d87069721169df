"""Likelihood sources: what turns cuts into the decoders' ``(T, num_pdfs)`` log-likelihood matrices.

Contract of :meth:`LikelihoodSource.log_likelihoods`: one cut in, a ``torch.float32`` CPU tensor of
shape ``(T, num_pdfs)`` out, T = :func:`asr_bl.features.num_frames` of the cut (the frame grid every
stage shares), column j = log p(frame | pdf j) up to a per-frame constant, NOT scaled (the decoder
applies the acoustic scale). Every source names ``num_pdfs`` and ``tree_fingerprint`` (sha1 of the
model's Kaldi ``tree``), so a graph built from another tree is refused naming both.

- :class:`GmmSource`: a GMM-HMM dir (``exp/tri2``: ``final.mdl``, ``tree``, ``done.json`` with the
  feature type it was trained on). Features are computed exactly as training computed them
  (:func:`asr_bl.hmm.feats.compute_gmm_features`: MFCC + Δ + ΔΔ, mean normalisation per
  conversation side over the decoded set, so :meth:`prepare` must see the whole set first). The
  likelihoods come from all Gaussians stacked into one matrix: ``[x, x², 1] @ W`` gives every
  Gaussian's log-density in one matmul per utterance, then a log-sum-exp per pdf (scatter-max +
  index-add). It equals the bindings' ``DecodableAmDiagGmmScaled`` (checked in the tests).
- :class:`NetworkSource`: a trained network dir (``asr_bl.train.load_model_dir``): log-softmax
  minus the floored log-prior, from the dense whole-utterance forward on the ``(3, F, T)`` input
  of :class:`asr_bl.features.FeatureLoader`.
"""
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import numpy as np
import torch

from asr_bl.io import Pathlike
from asr_bl.train.model_dir import ModelDirError  # one error for every kind of model dir

logger = logging.getLogger(__name__)

__all__ = ["LikelihoodSource", "GmmSource", "NetworkSource", "load_source", "ModelDirError", "stacked_gmm"]


class LikelihoodSource:
    """Interface; see the module docstring for the matrix contract."""

    num_pdfs: int
    tree_fingerprint: str
    description: str

    def prepare(self, cuts: Iterable[Any], num_jobs: int = 1) -> None:
        """Called once with every cut of the set before :meth:`log_likelihoods` (per-side statistics)."""

    def log_likelihoods(self, cut: Any) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def stacked_gmm(am: Any) -> Dict[str, torch.Tensor]:
    """All Gaussians of an ``AmDiagGmm`` as tensors: ``W`` (2D+1, G) for ``[x, x², 1]``, ``pdf`` (G,) int64.

    Column g of ``W``: ``means_invvars``, ``-0.5 inv_vars`` and ``gconst`` (log weight and
    normaliser folded in, as Kaldi's ``DiagGmm::gconsts``) of Gaussian g.
    """
    cols, pdf = [], []
    for j in range(int(am.num_pdfs)):
        g = am.get_pdf(j)
        mi = np.asarray(g.means_invvars, dtype=np.float64)
        iv = np.asarray(g.inv_vars, dtype=np.float64)
        gc = np.asarray(g.gconsts, dtype=np.float64).reshape(-1, 1)
        cols.append(np.concatenate([mi, -0.5 * iv, gc], axis=1))
        pdf.append(np.full(mi.shape[0], j, dtype=np.int64))
    W = torch.from_numpy(np.concatenate(cols).T.astype(np.float32)).contiguous()
    return {"W": W, "pdf": torch.from_numpy(np.concatenate(pdf))}


def gmm_log_likelihoods(feats: torch.Tensor, W: torch.Tensor, pdf: torch.Tensor, num_pdfs: int) -> torch.Tensor:
    """``(T, num_pdfs)`` float32 log-likelihoods of ``feats`` ``(T, D)`` under the stacked GMMs."""
    x = feats.to(torch.float32)
    T = x.shape[0]
    ll = torch.cat([x, x * x, torch.ones(T, 1)], dim=1) @ W  # (T, G)
    idx = pdf.unsqueeze(0).expand(T, -1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*scatter_reduce.*")
        m = torch.full((T, num_pdfs), -float("inf")).scatter_reduce(1, idx, ll, reduce="amax", include_self=True)
    s = torch.zeros(T, num_pdfs).index_add_(1, pdf, torch.exp(ll - m.gather(1, idx)))
    return m + torch.log(s)


class GmmSource(LikelihoodSource):
    """A GMM-HMM model dir as a likelihood source (see the module docstring)."""

    def __init__(self, model_dir: Pathlike) -> None:
        from asr_bl.hmm.feats import GmmFeatureConfig
        from asr_bl.hmm.model import GmmHmm
        from asr_bl.stage import fingerprint

        self.model_dir = Path(model_dir)
        for name in ("final.mdl", "tree"):
            if not (self.model_dir / name).is_file():
                raise ModelDirError(f"{self.model_dir / name}: not found; a GMM model dir holds final.mdl and tree "
                                    f"(asr_bl-gmm train-tri), a network dir model card files")
        self.model = GmmHmm.load(self.model_dir / "final.mdl")
        self.num_pdfs = int(self.model.num_pdfs)
        self.tree_fingerprint = fingerprint(self.model_dir / "tree")["sha1"]
        kind = "mfcc"
        done = self.model_dir / "done.json"
        if done.is_file():
            kind = json.loads(done.read_text()).get("args", {}).get("feature_type", "mfcc")
        self.feature_config = GmmFeatureConfig(kind=kind)
        self.frame_shift = float(self.feature_config.frame.frame_shift)
        self.sampling_rate = int(self.feature_config.frame.sampling_rate)
        st = stacked_gmm(self.model.am)
        self._W, self._pdf = st["W"], st["pdf"]
        self._feats: Dict[str, np.ndarray] = {}
        self.description = f"GMM {self.model_dir} ({self.num_pdfs} pdfs, {self._pdf.numel()} Gaussians, {kind})"

    def prepare(self, cuts: Iterable[Any], num_jobs: int = 1) -> None:
        from asr_bl.hmm.feats import compute_gmm_features

        self._feats = compute_gmm_features(list(cuts), self.feature_config, num_jobs=num_jobs, progress=False)

    def features(self, cut: Any) -> np.ndarray:
        if cut.id not in self._feats:
            self.prepare([cut])
        return self._feats[cut.id]

    def log_likelihoods(self, cut: Any) -> torch.Tensor:
        return self.matrix(self.features(cut))

    def matrix(self, feats: np.ndarray) -> torch.Tensor:
        """Log-likelihoods of precomputed GMM features ``(T, D)``."""
        return gmm_log_likelihoods(torch.from_numpy(np.asarray(feats, dtype=np.float32)), self._W, self._pdf,
                                   self.num_pdfs)


class NetworkSource(LikelihoodSource):
    """A trained network dir (``asr_bl.train.load_model_dir``) as a likelihood source."""

    def __init__(self, model_dir: Pathlike, device: str = "cpu") -> None:
        from asr_bl.train import load_model_dir

        self.model_dir = Path(model_dir)
        try:
            self.model = load_model_dir(self.model_dir, device=device)
        except FileNotFoundError as e:
            raise ModelDirError(f"{self.model_dir}: {e}; a network dir needs its checkpoint, card and priors "
                                f"(pdf counts from the alignment dir)") from e
        card = self.model.card
        self.num_pdfs = int(card.num_pdfs)
        self.tree_fingerprint = str(card.tree_fingerprint)
        self.description = f"network {self.model_dir} ({self.num_pdfs} pdfs)"
        from asr_bl.features import FbankConfig, FeatureLoader

        self._loader_cls = FeatureLoader
        self._config = FbankConfig(**card.feature_config)
        self.frame_shift = float(self._config.frame_shift)
        self.sampling_rate = int(self._config.sampling_rate)
        self._stats: Optional[Any] = None

    def prepare(self, cuts: Iterable[Any], num_jobs: int = 1) -> None:
        from lhotse import CutSet

        from asr_bl.features import compute_cmvn_stats

        cuts = list(cuts)
        # Per-side statistics over the decoded set (as the features stage computes them for a part):
        # from the attached features when every cut has them, else from the audio.
        source = "precomputed" if all(getattr(c, "has_features", False) for c in cuts) else "audio"
        self._stats = compute_cmvn_stats(CutSet.from_cuts(cuts), self._config, source=source)

    def log_likelihoods(self, cut: Any) -> torch.Tensor:
        source = "precomputed" if getattr(cut, "has_features", False) else "on-the-fly"
        loader = self._loader_cls(self._config, cmvn_stats=self._stats, source=source)
        feats = torch.from_numpy(loader([cut])[0])
        with torch.no_grad():
            return self.model.log_likelihoods(feats).to(torch.float32).cpu()


def load_source(model_dir: Pathlike, device: str = "cpu") -> LikelihoodSource:
    """A GMM dir (``final.mdl``) or a network dir (anything else ``load_model_dir`` reads)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(f"{model_dir}: model dir not found; pass a GMM dir (exp/tri2) or a trained network dir")
    if (model_dir / "final.mdl").is_file():
        return GmmSource(model_dir)
    return NetworkSource(model_dir, device=device)
