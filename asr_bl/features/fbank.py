"""The acoustic front end: 64 log-mel filterbanks at 8 kHz, Kaldi deltas, and the one frame grid.

Everything that counts frames (GMM alignments, the network's targets, chunking, decoding) must agree
on how many frames an utterance has. :func:`num_frames` is that single definition; it equals the
frame count of lhotse's Kaldi-compatible ``Fbank`` (and of ``torchaudio.compliance.kaldi`` and
Kaldi's ``compute-fbank-feats``) for the same ``snip_edges`` setting. With ``snip_edges=False``
(the default, lhotse's convention) a frame is centred every ``frame_shift`` and the count depends
only on the shift, so it also equals lhotse's duration-based ``compute_num_frames``.
"""
import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

logger = logging.getLogger(__name__)

CMVN_MODES = ("mean", "meanvar", "none")


@dataclass
class FbankConfig:
    """Configuration of the log-mel front end (the paper's 64 filterbanks + Δ + ΔΔ at 8 kHz).

    ``dither`` is 0 so that features are deterministic (training-time dither can be set explicitly).
    ``low_freq``/``high_freq`` follow Kaldi's conventions (a non-positive ``high_freq`` is an offset
    from Nyquist): 20 Hz .. 3600 Hz at 8 kHz, i.e. the telephone band.
    ``cmvn`` is applied per conversation side when loading: ``"mean"`` (default), ``"meanvar"``
    (also unit variance) or ``"none"``.
    """

    num_mel_bins: int = 64
    sampling_rate: int = 8000
    frame_length: float = 0.025
    frame_shift: float = 0.01
    dither: float = 0.0
    snip_edges: bool = False
    delta_window: int = 2
    cmvn: str = "mean"
    low_freq: float = 20.0
    high_freq: float = -400.0
    preemph_coeff: float = 0.97
    window_type: str = "povey"

    def __post_init__(self) -> None:
        if self.cmvn not in CMVN_MODES:
            raise ValueError(f"FbankConfig.cmvn must be one of {CMVN_MODES}, got {self.cmvn!r}")
        if self.delta_window < 1:
            raise ValueError(f"FbankConfig.delta_window must be >= 1, got {self.delta_window}")
        if self.num_mel_bins < 1:
            raise ValueError(f"FbankConfig.num_mel_bins must be >= 1, got {self.num_mel_bins}")

    @property
    def window_length_samples(self) -> int:
        """Samples per analysis window (200 at 8 kHz / 25 ms)."""
        return int(round(self.frame_length * self.sampling_rate))

    @property
    def window_shift_samples(self) -> int:
        """Samples between frame starts (80 at 8 kHz / 10 ms)."""
        return int(round(self.frame_shift * self.sampling_rate))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> "FbankConfig":
        return FbankConfig(**data)


def num_frames(num_samples: int, sampling_rate: int, config: FbankConfig) -> int:
    """THE frame count of ``num_samples`` samples at ``sampling_rate`` under ``config``.

    Equal to the number of rows lhotse's ``Fbank`` (and Kaldi) returns for that many samples.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    shift = int(round(config.frame_shift * sampling_rate))
    length = int(round(config.frame_length * sampling_rate))
    if config.snip_edges:
        if num_samples < length:
            return 0
        return 1 + (num_samples - length) // shift
    # Frames centred on multiples of the shift; rounding half a shift up, as Kaldi/lhotse do.
    return (num_samples + shift // 2) // shift


def num_frames_from_duration(duration: float, sampling_rate: int, config: FbankConfig) -> int:
    """:func:`num_frames` for a duration in seconds (rounded to whole samples first)."""
    return num_frames(int(round(duration * sampling_rate)), sampling_rate, config)


def lhotse_fbank_config(config: FbankConfig) -> "Any":
    """The equivalent ``lhotse.features.kaldi.extractors.FbankConfig``."""
    from lhotse.features.kaldi.extractors import FbankConfig as LhotseFbankConfig

    return LhotseFbankConfig(
        sampling_rate=config.sampling_rate,
        frame_length=config.frame_length,
        frame_shift=config.frame_shift,
        dither=config.dither,
        snip_edges=config.snip_edges,
        num_filters=config.num_mel_bins,
        low_freq=config.low_freq,
        high_freq=config.high_freq,
        preemph_coeff=config.preemph_coeff,
        window_type=config.window_type,
    )


def _kaldifeat_available() -> bool:
    try:
        import kaldifeat  # noqa: F401
    except ImportError:
        return False
    return True


def make_extractor(config: FbankConfig, backend: str = "auto") -> "Any":
    """A lhotse ``FeatureExtractor`` computing the log-mel filterbanks of ``config``.

    ``backend``: ``"lhotse"`` (lhotse's torch Kaldi-compatible ``Fbank``), ``"kaldifeat"``
    (lhotse's ``KaldifeatFbank``; needs the kaldifeat package) or ``"auto"`` (kaldifeat when it is
    installed, else lhotse). Both produce the frame grid of :func:`num_frames`.
    """
    if backend not in ("auto", "lhotse", "kaldifeat"):
        raise ValueError(f"backend must be 'auto', 'lhotse' or 'kaldifeat', got {backend!r}")
    if backend == "kaldifeat" or (backend == "auto" and _kaldifeat_available()):
        if not _kaldifeat_available():
            raise ImportError(
                "backend='kaldifeat' but kaldifeat is not installed; use backend='lhotse' "
                "(the default, Kaldi-compatible) or install kaldifeat from source"
            )
        from lhotse.features.kaldifeat import (
            KaldifeatFbank,
            KaldifeatFbankConfig,
            KaldifeatFrameOptions,
            KaldifeatMelOptions,
        )

        kf_config = KaldifeatFbankConfig(
            frame_opts=KaldifeatFrameOptions(
                sampling_rate=config.sampling_rate,
                frame_length=config.frame_length,
                frame_shift=config.frame_shift,
                dither=config.dither,
                snip_edges=config.snip_edges,
                preemph_coeff=config.preemph_coeff,
                window_type=config.window_type,
            ),
            mel_opts=KaldifeatMelOptions(
                num_bins=config.num_mel_bins,
                low_freq=config.low_freq,
                high_freq=config.high_freq,
            ),
        )
        return KaldifeatFbank(kf_config)
    from lhotse.features.kaldi.extractors import Fbank

    with warnings.catch_warnings():
        # lhotse warns that snip_edges=True breaks its duration->frames conversion; our frame grid
        # (num_frames) handles both settings, and cuts are built with the default (False).
        warnings.filterwarnings("ignore", message=".*snip_edges.*")
        return Fbank(lhotse_fbank_config(config))


def compute_fbank(
    samples: Union[np.ndarray, torch.Tensor],
    sampling_rate: int,
    config: Optional[FbankConfig] = None,
    extractor: Optional[Any] = None,
) -> np.ndarray:
    """Log-mel filterbanks of a mono signal: float32 array of shape ``(num_frames, num_mel_bins)``.

    ``samples`` are floats in [-1, 1] (lhotse's convention), shape ``(N,)`` or ``(1, N)``.
    ``extractor`` (from :func:`make_extractor`) may be passed to avoid rebuilding it per call.
    The row count is asserted to equal :func:`num_frames`.
    """
    config = config if config is not None else FbankConfig()
    if sampling_rate != config.sampling_rate:
        raise ValueError(
            f"audio is sampled at {sampling_rate} Hz but FbankConfig.sampling_rate is "
            f"{config.sampling_rate}; resample first (e.g. CutSet.resample({config.sampling_rate}))"
        )
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        if samples.shape[0] != 1:
            raise ValueError(f"compute_fbank expects mono audio, got shape {samples.shape}")
        samples = samples[0]
    if samples.ndim != 1:
        raise ValueError(f"compute_fbank expects a 1-D signal, got shape {samples.shape}")
    expected = num_frames(samples.shape[0], sampling_rate, config)
    if expected == 0:
        return np.zeros((0, config.num_mel_bins), dtype=np.float32)
    extractor = extractor if extractor is not None else make_extractor(config, backend="lhotse")
    feats = np.asarray(extractor.extract(samples, sampling_rate), dtype=np.float32)
    assert feats.shape == (expected, config.num_mel_bins), (
        f"front end returned {feats.shape}, frame grid says ({expected}, {config.num_mel_bins})"
    )
    return feats


def delta_kernels(window: int = 2, order: int = 2) -> np.ndarray:
    """Kaldi's regression windows, shape ``(order + 1, 2 * order * window + 1)``, centred.

    Row 0 is the identity, row 1 ``j / (2 * sum_k k^2)`` for ``j = -window..window``, row ``i``
    the convolution of row ``i - 1`` with row 1 (Kaldi's ``DeltaFeatures`` recursion: ΔΔ is
    applied to the original features with a wider kernel, not to the clamped Δ).
    """
    first = np.arange(-window, window + 1, dtype=np.float64)
    first /= 2.0 * float(np.sum(np.arange(1, window + 1, dtype=np.float64) ** 2))
    width = 2 * order * window + 1
    kernels = np.zeros((order + 1, width), dtype=np.float64)
    current = np.ones(1, dtype=np.float64)
    for i in range(order + 1):
        if i > 0:
            current = np.convolve(current, first)
        pad = (width - current.shape[0]) // 2
        kernels[i, pad : pad + current.shape[0]] = current
    return kernels


def compute_deltas(features: np.ndarray, window: int = 2, order: int = 2) -> np.ndarray:
    """Static features and their Kaldi deltas: ``(order + 1, T, F)`` float32.

    Frames beyond either end are the first/last frame (edge replication), as in Kaldi's
    ``add-deltas``.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be (T, F), got shape {features.shape}")
    num_t = features.shape[0]
    kernels = delta_kernels(window, order)
    half = kernels.shape[1] // 2
    out = np.empty((order + 1,) + features.shape, dtype=np.float32)
    if num_t == 0:
        return out
    x = features.astype(np.float64, copy=False)
    index = np.clip(np.arange(-half, num_t + half), 0, num_t - 1)
    padded = x[index]  # (T + 2 * half, F), edge-replicated
    for i in range(order + 1):
        acc = np.zeros_like(x)
        for j, w in enumerate(kernels[i]):
            if w != 0.0:
                acc += w * padded[j : j + num_t]
        out[i] = acc
    return out


def stack_deltas(logmel: np.ndarray, window: int = 2) -> np.ndarray:
    """Log-mel ``(T, F)`` -> the network input ``(3, F, T)`` float32: static, Δ, ΔΔ (Kaldi's)."""
    return np.ascontiguousarray(compute_deltas(logmel, window=window, order=2).transpose(0, 2, 1))


__all__ = [
    "CMVN_MODES",
    "FbankConfig",
    "compute_deltas",
    "compute_fbank",
    "delta_kernels",
    "lhotse_fbank_config",
    "make_extractor",
    "num_frames",
    "num_frames_from_duration",
    "stack_deltas",
]
