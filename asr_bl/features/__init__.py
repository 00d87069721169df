"""Acoustic features: 64 log-mel filterbanks + Kaldi Δ/ΔΔ, per-side CMVN, and the one frame grid.

The public names are those of :mod:`asr_bl.features.fbank` (configuration, frame grid, extraction,
deltas) and :mod:`asr_bl.features.pipeline` (storage, CMVN, loading); each module's ``__all__`` is
the one list of them.
"""
from asr_bl.features import fbank, pipeline
from asr_bl.features.fbank import *  # noqa: F401,F403
from asr_bl.features.pipeline import *  # noqa: F401,F403

__all__ = fbank.__all__ + pipeline.__all__
