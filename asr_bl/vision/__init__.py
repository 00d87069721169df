"""ImageNet Big-Little Nets (bL-ResNet, bL-ResNeXt, bL-SEResNeXt) and their plain baselines, and
the rest of the paper's vision models (Appendix A, Tables 6-10): the low-resolution baselines,
the concatenation merge, three branches, fewer and more merges (``ablations``), bL-ShuffleNetV2
(``shufflenet``) and bL-ResNet-101 in Faster R-CNN + FPN (``detection``; ``DETECTORS``).

``from asr_bl.vision import bl_resnet50`` builds a model whose ``state_dict`` equals the official
one (IBM's BigLittleNet code), so its published checkpoints load with :func:`load_official`.
``MODELS`` maps names (the reference JSON's ``bl_resnet50_a2_b4`` etc., the builders' names and
the baselines ``resnet50`` ...) to builders, for ``asr_bl-flops NAME --input-size 224``;
``asr_bl-flops vision-tables`` prints every model of Tables 6-10 beside the paper's figures.
"""

from asr_bl.vision.ablations import bl_resnet50_k3, bl_resnet50_m1, bl_resnet50_m2, bl_resnet101_m7
from asr_bl.vision.blocks import Bottleneck, SqueezeExcitation, make_shortcut, make_stage
from asr_bl.vision.checkpoint import CheckpointMismatchError, load_official, save_official
from asr_bl.vision.detection import DETECTORS, fasterrcnn_bl_resnet101_fpn, fasterrcnn_resnet101_fpn
from asr_bl.vision.models import (
    MODELS,
    STAGE_DEPTHS,
    BLNet,
    BLNetConfig,
    ResNet,
    ResNetConfig,
    bl_resnet50,
    bl_resnet50_concat,
    bl_resnet101,
    bl_resnet152,
    bl_resnext50_32x4d,
    bl_resnext101_32x4d,
    bl_resnext101_64x4d,
    bl_seresnext50_32x4d,
    bl_seresnext101_32x4d,
    resnet50,
    resnet50_lowres,
    resnet101,
    resnet101_lowres,
    resnet152,
    resnext50_32x4d,
    resnext101_32x4d,
    resnext101_64x4d,
    seresnext50_32x4d,
    seresnext101_32x4d,
)
from asr_bl.vision.shufflenet import (
    bl_shufflenet_v2_x1_0,
    bl_shufflenet_v2_x1_5,
    bl_shufflenet_v2_x2_0,
    shufflenet_v2_x1_0,
    shufflenet_v2_x1_5,
    shufflenet_v2_x2_0,
)

# Builders of the modules that build on ``models`` join its registry here (``models`` cannot
# import them without a cycle).
for _builder in (bl_resnet50_k3, bl_resnet50_m2, bl_resnet50_m1, bl_resnet101_m7,
                 bl_shufflenet_v2_x1_0, bl_shufflenet_v2_x1_5, bl_shufflenet_v2_x2_0,
                 shufflenet_v2_x1_0, shufflenet_v2_x1_5, shufflenet_v2_x2_0):
    MODELS[_builder.__name__] = _builder
del _builder

__all__ = [
    "load_official", "save_official", "CheckpointMismatchError",
    "MODELS", "STAGE_DEPTHS", "BLNet", "BLNetConfig", "ResNet", "ResNetConfig", "Bottleneck",
    "SqueezeExcitation", "make_shortcut", "make_stage",
    "bl_resnet50", "bl_resnet101", "bl_resnet152", "bl_resnext50_32x4d", "bl_resnext101_32x4d",
    "bl_resnext101_64x4d", "bl_seresnext50_32x4d", "bl_seresnext101_32x4d",
    "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x4d",
    "resnext101_64x4d", "seresnext50_32x4d", "seresnext101_32x4d",
    "resnet50_lowres", "resnet101_lowres", "bl_resnet50_concat", "bl_resnet50_k3", "bl_resnet50_m2",
    "bl_resnet50_m1", "bl_resnet101_m7", "bl_shufflenet_v2_x1_0", "bl_shufflenet_v2_x1_5",
    "bl_shufflenet_v2_x2_0", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "DETECTORS", "fasterrcnn_resnet101_fpn", "fasterrcnn_bl_resnet101_fpn",
]
