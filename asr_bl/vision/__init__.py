"""ImageNet Big-Little Nets (bL-ResNet, bL-ResNeXt, bL-SEResNeXt) and their plain baselines.

``from asr_bl.vision import bl_resnet50`` builds a model whose ``state_dict`` equals the official
one (IBM's BigLittleNet code), so its published checkpoints load with :func:`load_official`.
``MODELS`` maps names (the reference JSON's ``bl_resnet50_a2_b4`` etc., the builders' names and
the baselines ``resnet50`` ...) to builders, for ``asr_bl-flops NAME --input-size 224``.
"""
from asr_bl.vision.checkpoint import CheckpointMismatchError, load_official, save_official
from asr_bl.vision.blocks import Bottleneck, SqueezeExcitation, make_shortcut, make_stage
from asr_bl.vision.models import (
    MODELS,
    STAGE_DEPTHS,
    BLNet,
    BLNetConfig,
    ResNet,
    ResNetConfig,
    bl_resnet50,
    bl_resnet101,
    bl_resnet152,
    bl_resnext50_32x4d,
    bl_resnext101_32x4d,
    bl_resnext101_64x4d,
    bl_seresnext50_32x4d,
    bl_seresnext101_32x4d,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    resnext101_32x4d,
    resnext101_64x4d,
    seresnext50_32x4d,
    seresnext101_32x4d,
)

__all__ = [
    "load_official", "save_official", "CheckpointMismatchError",
    "MODELS", "STAGE_DEPTHS", "BLNet", "BLNetConfig", "ResNet", "ResNetConfig", "Bottleneck",
    "SqueezeExcitation", "make_shortcut", "make_stage",
    "bl_resnet50", "bl_resnet101", "bl_resnet152", "bl_resnext50_32x4d", "bl_resnext101_32x4d",
    "bl_resnext101_64x4d", "bl_seresnext50_32x4d", "bl_seresnext101_32x4d",
    "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x4d",
    "resnext101_64x4d", "seresnext50_32x4d", "seresnext101_32x4d",
]
