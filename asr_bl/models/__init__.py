"""Speech acoustic models: ResNet-22 and the bL-ResNet-22 family (paper Appendix B, Tables 3, 11)."""
from asr_bl.models.context import dense_forward, frame_windows, pad_context, windowed_forward
from asr_bl.models.presets import PRESETS, TABLE3_TARGETS, build_model, model_config, model_names
from asr_bl.models.speech_resnet import (
    CONTEXT_FRAMES,
    WINDOW_FRAMES,
    BranchSpec,
    SpeechResNet,
    SpeechResNetConfig,
    StageSpec,
)

__all__ = [
    "CONTEXT_FRAMES",
    "PRESETS",
    "TABLE3_TARGETS",
    "WINDOW_FRAMES",
    "BranchSpec",
    "SpeechResNet",
    "SpeechResNetConfig",
    "StageSpec",
    "build_model",
    "dense_forward",
    "frame_windows",
    "model_config",
    "model_names",
    "pad_context",
    "windowed_forward",
]
