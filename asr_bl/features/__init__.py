"""Acoustic features: 64 log-mel filterbanks + Kaldi Δ/ΔΔ, per-side CMVN, and the one frame grid."""
from asr_bl.features.fbank import (
    CMVN_MODES,
    FbankConfig,
    compute_deltas,
    compute_fbank,
    delta_kernels,
    lhotse_fbank_config,
    make_extractor,
    num_frames,
    num_frames_from_duration,
    stack_deltas,
)

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
