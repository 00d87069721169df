"""Data: LDC corpus preparation, transcript normalisation, and the frame-level training dataset."""
from asr_bl.data.dataset import (
    CONTEXT,
    IGNORE_LABEL,
    FrameDataConfig,
    FrameLevelDataset,
    attach_alignment,
    chunk_utterance,
    make_sampler,
    window_examples,
)
from asr_bl.data.normalize import TrainingTextConfig, normalize_hub5_reference, normalize_training_text

__all__ = [
    "CONTEXT",
    "FrameDataConfig",
    "FrameLevelDataset",
    "IGNORE_LABEL",
    "TrainingTextConfig",
    "attach_alignment",
    "chunk_utterance",
    "make_sampler",
    "normalize_hub5_reference",
    "normalize_training_text",
    "window_examples",
]
