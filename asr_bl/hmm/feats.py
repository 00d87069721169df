"""Features for the GMM-HMM: MFCC(13) + Δ + ΔΔ with per-side CMVN, on the network's frame grid.

Kaldi's GMM systems use MFCCs with cepstral mean normalisation per speaker, then deltas
(``apply-cmvn | add-deltas``). Here the "speaker" is the conversation side (recording, channel),
as in the SWB recipes: the side is :func:`asr_bl.features.side_key` and its statistics are
accumulated by :meth:`asr_bl.features.CmvnStats.accumulate`, exactly as for the network's
features (the modes are :data:`asr_bl.features.CMVN_MODES`); only their application differs,
in float64 here before the deltas (:func:`finalize_features`). The MFCC frame parameters are
those of the network's :class:`FbankConfig`, and every utterance's frame count is asserted to
equal :func:`asr_bl.features.num_frames`, so a GMM alignment labels exactly the frames the
network sees.

The alternative ``kind="fbank"`` uses the 64 log-mel filterbanks (+ Δ + ΔΔ) instead.
"""
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from asr_bl.features import CMVN_MODES, CmvnStats, FbankConfig, compute_deltas, compute_fbank, num_frames, side_key
from asr_bl.io import atomic_open
from asr_bl.parallel import single_thread

logger = logging.getLogger(__name__)


@dataclass
class GmmFeatureConfig:
    """What the GMM-HMM is trained on."""

    #: ``"mfcc"`` (13 cepstra, Kaldi's choice for GMMs) or ``"fbank"`` (the network's log-mels).
    kind: str = "mfcc"
    num_ceps: int = 13
    #: Mel bins of the MFCC's filterbank (Kaldi's 23 for 8 kHz).
    mfcc_num_filters: int = 23
    #: Order of the deltas appended (2 = Δ + ΔΔ).
    delta_order: int = 2
    #: Mean normalisation per conversation side before the deltas (``"mean"``, ``"meanvar"``, ``"none"``).
    cmvn: str = "mean"
    #: Frame parameters: the network's front end, so the frame grids agree.
    frame: FbankConfig = field(default_factory=FbankConfig)

    def __post_init__(self) -> None:
        if self.kind not in ("mfcc", "fbank"):
            raise ValueError(f"GmmFeatureConfig.kind must be 'mfcc' or 'fbank', got {self.kind!r}")
        if self.cmvn not in CMVN_MODES:
            raise ValueError(f"GmmFeatureConfig.cmvn must be one of {CMVN_MODES}, got {self.cmvn!r}")

    @property
    def dim(self) -> int:
        base = self.num_ceps if self.kind == "mfcc" else self.frame.num_mel_bins
        return base * (self.delta_order + 1)

    def fingerprint(self) -> str:
        """Short hash of the configuration, used to name feature caches."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def _mfcc_extractor(config: GmmFeatureConfig) -> Any:
    import warnings

    from lhotse.features.kaldi.extractors import Mfcc, MfccConfig

    f = config.frame
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*snip_edges.*")
        return Mfcc(
            MfccConfig(
                sampling_rate=f.sampling_rate,
                frame_length=f.frame_length,
                frame_shift=f.frame_shift,
                dither=0.0,
                snip_edges=f.snip_edges,
                low_freq=f.low_freq,
                high_freq=f.high_freq,
                preemph_coeff=f.preemph_coeff,
                window_type=f.window_type,
                num_filters=config.mfcc_num_filters,
                num_ceps=config.num_ceps,
            )
        )


def static_features(cut: Any, config: GmmFeatureConfig, extractor: Optional[Any] = None) -> np.ndarray:
    """Static (pre-CMVN, pre-delta) features ``(T, F)`` of one cut, T == ``num_frames``."""
    audio = cut.load_audio()
    if audio.ndim == 2:
        if audio.shape[0] != 1:
            raise ValueError(f"cut {cut.id} has {audio.shape[0]} channels; GMM features need mono cuts")
        audio = audio[0]
    sr = cut.sampling_rate
    expected = num_frames(audio.shape[0], sr, config.frame)
    if config.kind == "fbank":
        feats = compute_fbank(audio, sr, config.frame)
    else:
        if sr != config.frame.sampling_rate:
            raise ValueError(
                f"cut {cut.id} is sampled at {sr} Hz but the feature config expects "
                f"{config.frame.sampling_rate} Hz; resample the cuts first"
            )
        extractor = extractor if extractor is not None else _mfcc_extractor(config)
        feats = np.asarray(extractor.extract(audio.astype(np.float32), sr), dtype=np.float32)
    if getattr(cut, "has_features", False) and cut.num_frames != expected:
        raise AssertionError(
            f"cut {cut.id}: its attached network features have {cut.num_frames} frames but "
            f"asr_bl.features.num_frames gives {expected} for its {audio.shape[0]} samples"
        )
    if feats.shape[0] != expected:
        raise AssertionError(
            f"cut {cut.id}: GMM features have {feats.shape[0]} frames but the network's frame grid "
            f"(asr_bl.features.num_frames) says {expected}"
        )
    return feats


def finalize_features(static: np.ndarray, mean: np.ndarray, std: Optional[np.ndarray], order: int) -> np.ndarray:
    """CMVN (given the side's statistics) then deltas: ``(T, F * (order + 1))`` float32."""
    x = static.astype(np.float64) - mean
    if std is not None:
        x = x / std
    d = compute_deltas(x, window=2, order=order)  # (order+1, T, F)
    return np.ascontiguousarray(d.transpose(1, 0, 2).reshape(static.shape[0], -1), dtype=np.float32)


def _static_worker(args: Tuple[List[Any], GmmFeatureConfig]) -> List[Tuple[str, str, np.ndarray]]:
    cuts, config = args
    extractor = _mfcc_extractor(config) if config.kind == "mfcc" else None
    return [(c.id, side_key(c), static_features(c, config, extractor)) for c in cuts]


def compute_gmm_features(
    cuts: Iterable[Any], config: GmmFeatureConfig, num_jobs: int = 1, progress: bool = True
) -> Dict[str, np.ndarray]:
    """GMM features for every cut: ``{cut_id: (T, dim) float32}`` with per-side CMVN."""
    cuts = list(cuts)
    statics: Dict[str, np.ndarray] = {}
    sides: Dict[str, str] = {}
    chunk = 16
    batches = [(cuts[i : i + chunk], config) for i in range(0, len(cuts), chunk)]
    bar = tqdm(total=len(cuts), desc="GMM features", disable=not progress, unit="utt")
    if num_jobs > 1 and len(batches) > 1:
        import multiprocessing as mp

        # "spawn", not "fork": a forked child that runs torch's OpenMP after the parent has used
        # it deadlocks (libgomp is not fork-safe); the MFCCs are computed with torch.
        with mp.get_context("spawn").Pool(num_jobs, initializer=single_thread) as pool:
            for out in pool.imap(_static_worker, batches):
                for cid, side, f in out:
                    statics[cid], sides[cid] = f, side
                bar.update(len(out))
    else:
        for batch in batches:
            for cid, side, f in _static_worker(batch):
                statics[cid], sides[cid] = f, side
            bar.update(len(batch[0]))
    bar.close()
    # Per-side statistics over all of that side's frames (the network's CMVN accumulation).
    dim = next(iter(statics.values())).shape[1] if statics else 0
    stats = CmvnStats.accumulate(((sides[cid], f) for cid, f in statics.items()), dim)
    out: Dict[str, np.ndarray] = {}
    for cut in cuts:
        mean, std = stats.mean_std(sides[cut.id])
        if config.cmvn == "none":
            mean = np.zeros_like(mean)
        out[cut.id] = finalize_features(statics[cut.id], mean, std if config.cmvn == "meanvar" else None,
                                        config.delta_order)
    return out


def save_features(feats: Dict[str, np.ndarray], path: Path) -> None:
    """Store features as one ``.npz`` at exactly ``path``, atomically."""
    with atomic_open(path, "wb") as f:
        np.savez(f, **feats)


def load_features(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def manifest_fingerprint(path: Path) -> str:
    """A short sha1 of a manifest file's bytes: names the cache of features computed from it."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def cached_gmm_features(
    cuts: List[Any],
    config: GmmFeatureConfig,
    cache_dir: Path,
    tag: str,
    num_jobs: int = 1,
    source_fingerprint: str = "",
) -> Dict[str, np.ndarray]:
    """:func:`compute_gmm_features`, cached under ``cache_dir`` by ``tag``, ``source_fingerprint``
    (e.g. :func:`manifest_fingerprint` of the cuts manifest, so that a rebuilt manifest with the same
    name and cut ids does not reuse stale features) and config fingerprint.

    A cache is reused only when it holds every requested cut.
    """
    key = f"{tag}.{source_fingerprint}" if source_fingerprint else tag
    path = Path(cache_dir) / f"{key}.{config.kind}.{config.fingerprint()}.npz"
    if path.is_file():
        feats = load_features(path)
        if all(c.id in feats for c in cuts):
            logger.info("GMM features: reusing %s", path)
            return {c.id: feats[c.id] for c in cuts}
        logger.info("GMM features: %s lacks some cuts; recomputing", path)
    feats = compute_gmm_features(cuts, config, num_jobs=num_jobs)
    save_features(feats, path)
    logger.info("GMM features: wrote %s (%d utterances)", path, len(feats))
    return feats
