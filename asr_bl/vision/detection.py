"""bL-ResNet-101 as the backbone of torchvision's Faster R-CNN + FPN (Chen et al., ICLR 2019,
Appendix A.6, Table 10), beside the same detector on torchvision's ResNet-101.

The detector (region proposal network, RoIAlign, two-layer box head, predictor, image transform)
is torchvision's :class:`~torchvision.models.detection.FasterRCNN` unchanged; only the backbone
differs. No weights are downloaded (``weights=None`` everywhere).

FPN inputs. torchvision's ResNet-101 feeds the FPN with ``layer1..layer4`` (C2..C5: 256, 512,
1024, 2048 channels at strides 4, 8, 16, 32). In bL-ResNet the stride of ResNet's stage ``k + 1``
sits in the ``fusion`` block at the end of bL stage ``k``, so the maps with ResNet's C2 and C3
strides and widths are the *merged* outputs of ``layer1`` and ``layer2`` before their strided
fusion block (256 channels at stride 4, 512 at stride 8: "merging happens at the highest
resolution", Sec. 3.1); C4 and C5 are the outputs of ``layer3`` (its fusion is unstrided, 1024 at
16) and ``layer4`` (2048 at 32). The FPN (256 channels, max-pooled P6) is therefore identical in
both detectors and the MAC difference is the backbones' alone.

Counting (Table 10's footnotes): :func:`count_detector_macs` runs the detector once on a random
``H x W`` image with the transform set to keep that size (torchvision then pads each side to a
multiple of 32, e.g. 600 -> 608) and the region proposal network set to hand exactly
``proposals`` boxes to the box head (NMS and the removal of tiny boxes disabled for the count,
so that untrained weights cannot leave fewer). The MACs are those of every convolution and
linear layer (``asr_bl.nn.count_macs``); RoIAlign, NMS and box decoding are not counted.

Measured (GMACs; ResNet-101 / bL-ResNet-101, ratio; paper 137.70 / 89.21 = 1.54x and
234.85 / 151.11 = 1.55x):

==========  ==========================  ==============================  ================
image       whole detector              without the RPN head            backbone body
==========  ==========================  ==============================  ================
600x1024    167.12 / 118.63 = 1.41x     136.35 / 87.85 = 1.55x          96.78 / 48.28
800x1344    285.48 / 201.74 = 1.42x     232.34 / 148.59 = 1.56x         167.13 / 83.38
==========  ==========================  ==============================  ================

The backbones differ by 2.0x as the classifiers do (Table 2: 7.80 / 3.89), and FPN, RPN and
heads are identical in both detectors. Left out, torchvision's RPN head (a 3x3 conv and two 1x1
convs on all five levels: 30.8 GMACs at 600x1024) takes the totals and the ratio to within 2 %
of Table 10 at both sizes (-1.0 / -1.5 % and -1.1 / -1.7 %); whether the paper's (Tensorpack)
count had no RPN head, or its RPN was cheaper, the text does not say. With it, our ratio is
1.41x: the same backbone saving diluted by 30-53 GMACs more of shared work.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from asr_bl.nn import MacCount, count_macs, merge_branches
from asr_bl.nn.big_little import BigLittleModule
from asr_bl.vision.models import BLNet, BLNetConfig

__all__ = [
    "TABLE10",
    "FPN_CHANNELS",
    "BLNetFPN",
    "bl_resnet101_fpn_backbone",
    "fasterrcnn_bl_resnet101_fpn",
    "fasterrcnn_resnet101_fpn",
    "DetectorMacs",
    "count_detector_macs",
    "DETECTORS",
]

#: Output channels of every FPN level (torchvision's and the paper's FPN).
FPN_CHANNELS = 256
#: Table 10: (image height, width) -> (ResNet-101 GFLOPs, bL-ResNet-101 GFLOPs), 300 proposals.
TABLE10: Dict[Tuple[int, int], Tuple[float, float]] = {
    (600, 1024): (137.70, 89.21),  # PASCAL VOC
    (800, 1344): (234.85, 151.11),  # MS COCO
}


def _merged_then_fused(stage: BigLittleModule, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """A bL stage's merged map (before ``fusion``) and its output (after)."""
    merged = merge_branches(stage.branch_outputs(x), stage.config, stage.merge_conv)
    return merged, stage.fusion(merged) if stage.fusion is not None else merged


class BLNetFPN(nn.Module):
    """A bL-Net body with a feature pyramid: images ``(B, 3, H, W)`` -> ``OrderedDict`` of
    ``FPN_CHANNELS``-channel maps ``"0".."3"`` (strides 4, 8, 16, 32) and ``"pool"`` (64), the
    interface torchvision's detectors expect (``out_channels`` attribute included)."""

    def __init__(self, body: BLNet, out_channels: int = FPN_CHANNELS) -> None:
        super().__init__()
        self.body = body
        in_channels = [
            body.layer1.fusion[0].conv3.out_channels,
            body.layer2.fusion[0].conv3.out_channels,
            body.layer3.fusion[0].conv3.out_channels,
            body.layer4[-1].conv3.out_channels,
        ]
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        body = self.body
        x = body.relu(body.bn1(body.conv1(x)))
        big = body.bn_b0(body.b_conv0(x))
        little = body.relu(body.bn_l0(body.l_conv0(x)))
        little = body.relu(body.bn_l1(body.l_conv1(little)))
        if body.l_conv2 is None:
            x = body.relu(torch.cat([big, little], dim=1))
        else:
            x = body.relu(big + body.bn_l2(body.l_conv2(little)))
        x = body.relu(body.bn_bl_init(body.bl_init(x)))
        c2, x = _merged_then_fused(body.layer1, x)
        c3, x = _merged_then_fused(body.layer2, x)
        c4 = body.layer3(x)
        c5 = body.layer4(c4)
        return self.fpn(OrderedDict([("0", c2), ("1", c3), ("2", c4), ("3", c5)]))


def bl_resnet101_fpn_backbone(alpha: int = 2, beta: int = 4, upsample: str = "nearest") -> BLNetFPN:
    """bL-ResNet-101 (alpha, beta) with an FPN on its C2..C5 maps (see the module docstring); the
    classifier is dropped, as torchvision's ``resnet_fpn_backbone`` drops ResNet's."""
    body = BLNet(BLNetConfig(depth=101, alpha=alpha, beta=beta, upsample=upsample))
    body.avgpool, body.fc = nn.Identity(), nn.Identity()
    return BLNetFPN(body)


def fasterrcnn_bl_resnet101_fpn(num_classes: int = 91, alpha: int = 2, beta: int = 4,
                                **kwargs) -> FasterRCNN:
    """Faster R-CNN + FPN on bL-ResNet-101 (alpha=2, beta=4), Table 10 (89.21 GFLOPs at 600x1024
    and 151.11 at 800x1344 with 300 proposals in the paper's detector). ``kwargs`` go to
    torchvision's ``FasterRCNN`` (``min_size``, ``max_size``, ``rpn_post_nms_top_n_test``, ...)."""
    return FasterRCNN(bl_resnet101_fpn_backbone(alpha, beta), num_classes=num_classes, **kwargs)


def fasterrcnn_resnet101_fpn(num_classes: int = 91, **kwargs) -> FasterRCNN:
    """Faster R-CNN + FPN on torchvision's ResNet-101, Table 10's baseline (137.70 GFLOPs at
    600x1024, 234.85 at 800x1344 in the paper's detector); untrained, ``weights=None``."""
    backbone = resnet_fpn_backbone(backbone_name="resnet101", weights=None)
    return FasterRCNN(backbone, num_classes=num_classes, **kwargs)


@dataclass
class DetectorMacs:
    """MACs of one detector forward pass, split by part (per image).

    ``without_rpn`` leaves out the region proposal network's head (a 3x3 conv and two 1x1 convs
    on every pyramid level): with it left out, torchvision's detector reproduces Table 10's
    totals within 2 % at both image sizes (the paper's own detector and counter are not
    published, so whether its count had no RPN head cannot be told from the text).
    """

    count: MacCount
    backbone: int
    fpn: int
    rpn: int
    roi_heads: int
    proposals: int

    @property
    def total(self) -> int:
        return self.count.macs

    @property
    def without_rpn(self) -> int:
        return self.count.macs - self.rpn


@torch.no_grad()
def count_detector_macs(model: FasterRCNN, height: int, width: int, proposals: int = 300,
                        seed: int = 0) -> DetectorMacs:
    """MACs of one detector forward pass on a random ``height x width`` image whose box head sees
    exactly ``proposals`` region proposals, split into backbone body, FPN, RPN and RoI heads.

    The model's transform sizes and RPN settings are changed for the call and restored after.
    Raises ``RuntimeError`` when the box head saw another number of proposals (e.g. an image too
    small to hold that many anchors).
    """
    transform, rpn = model.transform, model.rpn
    saved = (transform.min_size, transform.max_size, dict(rpn._post_nms_top_n),
             dict(rpn._pre_nms_top_n), rpn.nms_thresh, rpn.min_size)
    seen: List[int] = []
    hook = model.roi_heads.box_head.register_forward_hook(
        lambda module, inputs, output: seen.append(int(inputs[0].shape[0])))
    try:
        transform.min_size, transform.max_size = (min(height, width),), max(height, width)
        rpn._post_nms_top_n = {"training": proposals, "testing": proposals}
        rpn._pre_nms_top_n = {k: max(v, proposals) for k, v in rpn._pre_nms_top_n.items()}
        # Keep every candidate, degenerate ones included: untrained weights (an FrozenBN
        # backbone without statistics) decode to boxes of zero size, which would be dropped.
        rpn.nms_thresh, rpn.min_size = 1.0, 0.0
        generator = torch.Generator().manual_seed(seed)
        image = torch.rand(1, 3, height, width, generator=generator)
        count = count_macs(model, image)
    finally:
        hook.remove()
        (transform.min_size, transform.max_size, rpn._post_nms_top_n, rpn._pre_nms_top_n,
         rpn.nms_thresh, rpn.min_size) = saved
    if seen != [proposals]:
        raise RuntimeError(f"the box head saw {seen} proposals instead of {proposals}")
    parts = {"backbone": 0, "fpn": 0, "rpn": 0, "roi_heads": 0}
    for name, macs in count.per_module.items():
        if name.startswith("backbone.fpn."):
            parts["fpn"] += macs
        elif name.startswith("backbone."):
            parts["backbone"] += macs
        elif name.startswith("rpn."):
            parts["rpn"] += macs
        elif name.startswith("roi_heads."):
            parts["roi_heads"] += macs
        else:
            raise RuntimeError(f"counted module {name!r} belongs to no part of the detector")
    return DetectorMacs(count=count, proposals=proposals, **parts)


#: Detector name -> builder (keyword arguments as the builder's, all optional).
DETECTORS = {
    "fasterrcnn_resnet101_fpn": fasterrcnn_resnet101_fpn,
    "fasterrcnn_bl_resnet101_fpn": fasterrcnn_bl_resnet101_fpn,
}
