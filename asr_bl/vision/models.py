"""ImageNet Big-Little Nets (Chen et al., ICLR 2019, Appendix A) and their plain baselines.

The bL models reproduce the official PyTorch code (IBM's BigLittleNet repository, which published
the ImageNet checkpoints) module for module, so its ``state_dict`` loads by name, strictly:

* stem: 7x7/2 conv, then instead of the max-pool a two-branch bL stem at 1/4 resolution:
  ``b_conv0`` (3x3/2) on the Big side, ``l_conv0`` (3x3) -> ``l_conv1`` (3x3/2) -> ``l_conv2`` (1x1)
  on the Little side at ``64/alpha`` channels, merged by ReLU(big + little) and mixed by ``bl_init``.
* ``layer1..3`` are bL stages: the Big-Branch runs ``blocks-1`` bottlenecks at half resolution
  (first one strided), the Little-Branch ``max(1, blocks//beta - 1)`` bottlenecks at full
  resolution and ``out/alpha`` width, ``little_e`` (1x1 conv + BN) restores the width, the Big
  output is up-sampled (nearest in the official code, bilinear in the paper) and
  ReLU(big + little) is followed by one ``fusion`` bottleneck, strided in layer1 and layer2.
* ``layer4`` is a plain stage; strided shortcuts are AvgPool(3, 2, 1) + 1x1 conv + BN.

The plain baselines (ResNet, ResNeXt, SE-ResNeXt) use torchvision's layout (max-pool stem,
strided 1x1-conv shortcuts), so torchvision's ResNet/ResNeXt checkpoints load into them as well.
"""
import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn

from asr_bl.nn import BigLittleModule, MergeConfig, channel_matching
from asr_bl.vision.blocks import Bottleneck, make_stage

__all__ = [
    "STAGE_DEPTHS",
    "PLAIN_STAGE_DEPTHS",
    "BLNetConfig",
    "ResNetConfig",
    "BLNet",
    "ResNet",
    "bl_resnet50",
    "bl_resnet101",
    "bl_resnet152",
    "bl_resnext50_32x4d",
    "bl_resnext101_32x4d",
    "bl_resnext101_64x4d",
    "bl_seresnext50_32x4d",
    "bl_seresnext101_32x4d",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x4d",
    "resnext101_64x4d",
    "seresnext50_32x4d",
    "seresnext101_32x4d",
    "resnet50_lowres",
    "resnet101_lowres",
    "bl_resnet50_concat",
    "MODELS",
]

#: Bottleneck counts per stage of the bL-Nets (official code). For 101 and 152 they differ from
#: ResNet's: the deeper Big-Branch stages trade blocks of stage 3 for blocks of stages 1-2.
STAGE_DEPTHS: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (4, 8, 18, 3),
    152: (5, 12, 30, 3),
}
#: Bottleneck counts per stage of the plain ResNets (He et al.; torchvision).
PLAIN_STAGE_DEPTHS: Dict[int, Tuple[int, int, int, int]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
#: Inner width of the four stages of a ResNet; stage outputs are 4x these.
STAGE_WIDTHS = (64, 128, 256, 512)
SE_REDUCTION = 16


def _stage_depths(depth: int, plain: bool = False) -> Tuple[int, int, int, int]:
    table = PLAIN_STAGE_DEPTHS if plain else STAGE_DEPTHS
    if depth not in table:
        raise ValueError(f"unsupported depth {depth}; expected one of {sorted(table)}")
    return table[depth]


@dataclass
class BLNetConfig:
    """Hyper-parameters of an ImageNet bL-Net.

    Attributes:
        depth: 50, 101 or 152, with the official code's stage depths :data:`STAGE_DEPTHS`:
            ResNet's (3, 4, 6, 3) for 50, but (4, 8, 18, 3) and (5, 12, 30, 3) for 101 and 152.
        alpha: width reduction of the Little-Branch.
        beta: depth reduction of the Little-Branch.
        groups: cardinality of the Big-Branch bottlenecks (1 = ResNet, 32/64 = ResNeXt); a
            ResNeXt Little-Branch uses ``groups // alpha``.
        base_width: ResNeXt's per-group width ``d`` (64 for ResNet); a ResNeXt Little-Branch
            uses ``base_width * alpha``, which keeps its grouped conv's per-group channels. A
            ResNet Little-Branch (groups=1) is a plain bottleneck of width ``out / alpha / 4``.
        se: add squeeze-excitation (reduction 16) to every bottleneck.
        num_classes: classifier outputs.
        upsample: ``"nearest"`` (official code, needed for its checkpoints) or ``"bilinear"``
            (the paper's text).
        merge: ``"add"`` (the paper's default: ``little_e`` widens the Little output to ``C``) or
            ``"concat"`` (Table 7, Appendix A.4): the Big-Branch of every bL-module (stem
            included) outputs ``C - C/alpha`` channels and the Little-Branch ``C/alpha``, so
            their concatenation already has the ``C`` channels of the backbone and no 1x1 conv
            (neither ``little_e`` nor a merge conv) is needed; that is the reading of "the number
            of kernels in the Big-Branch would be only 1 - 1/alpha" that gives Table 7's 2.01
            GMACs / 20.57 M.
    """

    depth: int = 50
    alpha: int = 2
    beta: int = 4
    groups: int = 1
    base_width: int = 64
    se: bool = False
    num_classes: int = 1000
    upsample: str = "nearest"
    merge: str = "add"

    def __post_init__(self) -> None:
        _stage_depths(self.depth)
        if self.alpha < 1 or self.beta < 1:
            raise ValueError(f"alpha and beta must be >= 1, got alpha={self.alpha} beta={self.beta}")
        if self.groups > 1 and self.groups % self.alpha:
            raise ValueError(f"groups={self.groups} must be divisible by alpha={self.alpha}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {self.upsample!r}")
        if self.merge not in ("add", "concat"):
            raise ValueError(f"merge must be 'add' or 'concat', got {self.merge!r}")
        if self.merge == "concat" and self.alpha < 2:
            raise ValueError("a concat merge needs alpha >= 2 (the Big-Branch keeps C - C/alpha channels)")


@dataclass
class ResNetConfig:
    """Hyper-parameters of a plain (torchvision-layout) ResNet / ResNeXt / SE-ResNeXt.

    Attributes:
        lowres: the "-lowres" baseline of Table 6 (Appendix A.3): the network works at the
            Big-Branch's half resolution. Its stem is the Big side of the bL stem (7x7/2 conv,
            then ``b_conv0``, a 3x3/2 conv + BN + ReLU, in place of the max-pool) and stage 1 is
            strided, so the four stages see 28, 14, 7 and 4 pixels at 224 input instead of 56,
            28, 14 and 7. This reading reproduces Table 6 (1.29 / 2.22 GMACs, 25.60 / 44.57 M);
            keeping the max-pool as well would give 1.18 GMACs, feeding a 112x112 image 1.02.
    """

    depth: int = 50
    groups: int = 1
    base_width: int = 64
    se: bool = False
    num_classes: int = 1000
    lowres: bool = False

    def __post_init__(self) -> None:
        _stage_depths(self.depth, plain=True)


def _conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
) -> Tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
    )
    return conv, nn.BatchNorm2d(out_channels)


def _init_weights(model: nn.Module) -> None:
    """He-normal (fan-out) convs, unit BN, and a zero last BN per bottleneck (Goyal et al.):
    every residual block starts as the identity, which is what the official code does."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)


class BLNet(nn.Module):
    """bL-ResNet / bL-ResNeXt / bL-SEResNeXt for ImageNet (official layout, see module doc)."""

    def __init__(self, config: BLNetConfig) -> None:
        super().__init__()
        self.config = config
        depths = _stage_depths(config.depth)
        stem = STAGE_WIDTHS[0]
        little_stem = stem // config.alpha
        concat = config.merge == "concat"
        self.conv1, self.bn1 = _conv_bn(3, stem, 7, stride=2)
        self.relu = nn.ReLU(inplace=True)
        # bL stem: replaces ResNet's max-pool with a strided Big conv and a Little path that
        # looks at the full 112x112 map with fewer channels.
        self.b_conv0, self.bn_b0 = _conv_bn(stem, stem - little_stem if concat else stem, 3, stride=2)
        self.l_conv0, self.bn_l0 = _conv_bn(stem, little_stem, 3)
        self.l_conv1, self.bn_l1 = _conv_bn(little_stem, little_stem, 3, stride=2)
        if concat:  # concatenated, the two stem outputs already have ``stem`` channels
            self.l_conv2 = self.bn_l2 = None
        else:
            self.l_conv2, self.bn_l2 = _conv_bn(little_stem, stem, 1)
        self.bl_init, self.bn_bl_init = _conv_bn(stem, stem, 1)

        in_channels = stem
        stages: List[nn.Module] = []
        for index in range(3):
            out_channels = STAGE_WIDTHS[index] * Bottleneck.expansion
            stages.append(
                self._bl_stage(in_channels, out_channels, depths[index], stride=2 if index < 2 else 1)
            )
            in_channels = out_channels
        self.layer1, self.layer2, self.layer3 = stages
        out_channels = STAGE_WIDTHS[3] * Bottleneck.expansion
        self.layer4 = make_stage(
            in_channels,
            out_channels,
            depths[3],
            stride=2,
            groups=config.groups,
            base_width=config.base_width,
            se_reduction=SE_REDUCTION if config.se else 0,
            shortcut_style="avgpool",
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(out_channels, config.num_classes)
        _init_weights(self)

    def _bl_stage(self, in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Module:
        cfg = self.config
        se = SE_REDUCTION if cfg.se else 0
        little_channels = out_channels // cfg.alpha
        concat = cfg.merge == "concat"
        big = make_stage(
            in_channels,
            out_channels - little_channels if concat else out_channels,
            blocks - 1,
            stride=2,
            groups=cfg.groups,
            base_width=cfg.base_width,
            se_reduction=se,
            shortcut_style="avgpool",
            last_relu=False,  # the merge applies ReLU(big + little)
        )
        resnext = cfg.groups > 1
        little = make_stage(
            in_channels,
            little_channels,
            max(1, blocks // cfg.beta - 1),
            stride=1,
            groups=cfg.groups // cfg.alpha if resnext else 1,
            base_width=cfg.base_width * cfg.alpha if resnext else cfg.base_width,
            se_reduction=se,
            shortcut_style="avgpool",
        )
        fusion = make_stage(
            out_channels,
            out_channels,
            1,
            stride=stride,
            groups=cfg.groups,
            base_width=cfg.base_width,
            se_reduction=se,
            shortcut_style="avgpool",
        )
        # The shared bL core: ReLU(up(big) + little_e(little)), Big up-sampled to the Little
        # map's exact size (so odd input sizes agree too), then the fusion bottleneck. A concat
        # merge needs no 1x1 conv (the channels add up to C): its merge_conv is the identity.
        return BigLittleModule(
            big=big,
            little=little,
            little_e=None if concat else channel_matching(little_channels, out_channels),
            config=MergeConfig.vision(mode=cfg.merge, resample_mode=cfg.upsample),
            merge_conv=nn.Identity() if concat else None,
            fusion=fusion,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> layer4 feature map ``(B, 2048, H/32, W/32)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        big = self.bn_b0(self.b_conv0(x))
        little = self.relu(self.bn_l0(self.l_conv0(x)))
        little = self.relu(self.bn_l1(self.l_conv1(little)))
        if self.l_conv2 is None:
            x = self.relu(torch.cat([big, little], dim=1))
        else:
            x = self.relu(big + self.bn_l2(self.l_conv2(little)))
        x = self.relu(self.bn_bl_init(self.bl_init(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


class ResNet(nn.Module):
    """Plain ResNet / ResNeXt / SE-ResNeXt in torchvision's layout (max-pool stem, conv shortcuts)."""

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        depths = _stage_depths(config.depth, plain=True)
        self.conv1, self.bn1 = _conv_bn(3, STAGE_WIDTHS[0], 7, stride=2)
        self.relu = nn.ReLU(inplace=True)
        if config.lowres:  # Table 6: the bL stem's Big side in place of the max-pool
            self.maxpool = None
            self.b_conv0, self.bn_b0 = _conv_bn(STAGE_WIDTHS[0], STAGE_WIDTHS[0], 3, stride=2)
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = STAGE_WIDTHS[0]
        stages: List[nn.Module] = []
        for index, blocks in enumerate(depths):
            out_channels = STAGE_WIDTHS[index] * Bottleneck.expansion
            stages.append(
                make_stage(
                    in_channels,
                    out_channels,
                    blocks,
                    stride=1 if index == 0 and not config.lowres else 2,
                    groups=config.groups,
                    base_width=config.base_width,
                    se_reduction=SE_REDUCTION if config.se else 0,
                    shortcut_style="conv",
                )
            )
            in_channels = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, config.num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> layer4 feature map ``(B, 2048, H/32, W/32)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn_b0(self.b_conv0(x))) if self.maxpool is None else self.maxpool(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


# ----------------------------------------------------------------------------- builders


def _bl(depth: int, groups: int, base_width: int, se: bool, alpha: int, beta: int,
        num_classes: int, upsample: str) -> BLNet:
    return BLNet(BLNetConfig(depth=depth, alpha=alpha, beta=beta, groups=groups,
                             base_width=base_width, se=se, num_classes=num_classes,
                             upsample=upsample))


def bl_resnet50(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                upsample: str = "nearest") -> BLNet:
    """bL-ResNet-50 (Table 1: 2.85 GMACs, 26.69M params at alpha=2, beta=4)."""
    return _bl(50, 1, 64, False, alpha, beta, num_classes, upsample)


def bl_resnet101(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                 upsample: str = "nearest") -> BLNet:
    """bL-ResNet-101 (Table 2: 3.89 GMACs, 41.85M params)."""
    return _bl(101, 1, 64, False, alpha, beta, num_classes, upsample)


def bl_resnet152(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                 upsample: str = "nearest") -> BLNet:
    """bL-ResNet-152 (Table 2: 5.04 GMACs, 57.36M params)."""
    return _bl(152, 1, 64, False, alpha, beta, num_classes, upsample)


def bl_resnext50_32x4d(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                       upsample: str = "nearest") -> BLNet:
    """bL-ResNeXt-50 32x4d (Table 2: 3.03 GMACs, 26.19M params)."""
    return _bl(50, 32, 4, False, alpha, beta, num_classes, upsample)


def bl_resnext101_32x4d(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                        upsample: str = "nearest") -> BLNet:
    """bL-ResNeXt-101 32x4d (Table 2: 4.08 GMACs, 41.51M params)."""
    return _bl(101, 32, 4, False, alpha, beta, num_classes, upsample)


def bl_resnext101_64x4d(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                        upsample: str = "nearest") -> BLNet:
    """bL-ResNeXt-101 64x4d (Table 2: 7.14 GMACs, 77.36M params)."""
    return _bl(101, 64, 4, False, alpha, beta, num_classes, upsample)


def bl_seresnext50_32x4d(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                         upsample: str = "nearest") -> BLNet:
    """bL-SEResNeXt-50 32x4d (Table 2: 3.03 GMACs, 28.77M params)."""
    return _bl(50, 32, 4, True, alpha, beta, num_classes, upsample)


def bl_seresnext101_32x4d(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                          upsample: str = "nearest") -> BLNet:
    """bL-SEResNeXt-101 32x4d (Table 2: 4.08 GMACs, 45.88M params)."""
    return _bl(101, 32, 4, True, alpha, beta, num_classes, upsample)


def bl_resnet50_concat(alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                       upsample: str = "nearest") -> BLNet:
    """bL-ResNet-50 merging by concatenation (Table 7, Appendix A.4: 2.01 GMACs, 20.57M params at
    alpha=2, beta=4): Big-Branches ``C - C/alpha`` wide, Little-Branches ``C/alpha``, no 1x1
    conv after the concatenation (see ``BLNetConfig.merge``)."""
    return BLNet(BLNetConfig(depth=50, alpha=alpha, beta=beta, num_classes=num_classes,
                             upsample=upsample, merge="concat"))


def _plain(depth: int, groups: int, base_width: int, se: bool, num_classes: int,
           lowres: bool = False) -> ResNet:
    return ResNet(ResNetConfig(depth=depth, groups=groups, base_width=base_width, se=se,
                               num_classes=num_classes, lowres=lowres))


def resnet50_lowres(num_classes: int = 1000) -> ResNet:
    """ResNet-50-lowres (Table 6, Appendix A.3: 1.29 GMACs, 25.60M params): ResNet-50 working at
    the Big-Branch's half resolution (see ``ResNetConfig.lowres``)."""
    return _plain(50, 1, 64, False, num_classes, lowres=True)


def resnet101_lowres(num_classes: int = 1000) -> ResNet:
    """ResNet-101-lowres (Table 6, Appendix A.3: 2.22 GMACs, 44.57M params)."""
    return _plain(101, 1, 64, False, num_classes, lowres=True)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 (4.09 GMACs, 25.56M params; torchvision layout)."""
    return _plain(50, 1, 64, False, num_classes)


def resnet101(num_classes: int = 1000) -> ResNet:
    """ResNet-101 (stages 3-4-23-3; 7.80 GMACs, 44.55M params; torchvision layout)."""
    return _plain(101, 1, 64, False, num_classes)


def resnet152(num_classes: int = 1000) -> ResNet:
    """ResNet-152 (stages 3-8-36-3; torchvision layout)."""
    return _plain(152, 1, 64, False, num_classes)


def resnext50_32x4d(num_classes: int = 1000) -> ResNet:
    """ResNeXt-50 32x4d (torchvision layout)."""
    return _plain(50, 32, 4, False, num_classes)


def resnext101_32x4d(num_classes: int = 1000) -> ResNet:
    """ResNeXt-101 32x4d."""
    return _plain(101, 32, 4, False, num_classes)


def resnext101_64x4d(num_classes: int = 1000) -> ResNet:
    """ResNeXt-101 64x4d (torchvision layout)."""
    return _plain(101, 64, 4, False, num_classes)


def seresnext50_32x4d(num_classes: int = 1000) -> ResNet:
    """SE-ResNeXt-50 32x4d: ResNeXt-50 with squeeze-excitation (reduction 16) before each add."""
    return _plain(50, 32, 4, True, num_classes)


def seresnext101_32x4d(num_classes: int = 1000) -> ResNet:
    """SE-ResNeXt-101 32x4d."""
    return _plain(101, 32, 4, True, num_classes)


def _registry() -> Dict[str, Callable[..., nn.Module]]:
    models: Dict[str, Callable[..., nn.Module]] = {}
    # The official configurations, named as in the reference JSON: <builder>_a<alpha>_b<beta>.
    bl_builders: Sequence[Tuple[str, Callable[..., BLNet], Sequence[Tuple[int, int]]]] = (
        ("bl_resnet50", bl_resnet50, ((2, 2), (2, 4), (4, 2), (4, 4))),
        ("bl_resnet101", bl_resnet101, ((2, 4),)),
        ("bl_resnet152", bl_resnet152, ((2, 4),)),
        ("bl_resnext50_32x4d", bl_resnext50_32x4d, ((2, 4),)),
        ("bl_resnext101_32x4d", bl_resnext101_32x4d, ((2, 4),)),
        ("bl_resnext101_64x4d", bl_resnext101_64x4d, ((2, 4),)),
        ("bl_seresnext50_32x4d", bl_seresnext50_32x4d, ((2, 4),)),
        ("bl_seresnext101_32x4d", bl_seresnext101_32x4d, ((2, 4),)),
    )
    for name, builder, settings in bl_builders:
        models[name] = builder  # paper default alpha=2, beta=4
        for alpha, beta in settings:
            models[f"{name}_a{alpha}_b{beta}"] = functools.partial(builder, alpha=alpha, beta=beta)
    for builder in (resnet50, resnet101, resnet152, resnext50_32x4d, resnext101_32x4d,
                    resnext101_64x4d, seresnext50_32x4d, seresnext101_32x4d, resnet50_lowres,
                    resnet101_lowres, bl_resnet50_concat):
        models[builder.__name__] = builder
    return models


#: Model name -> builder callable (keyword arguments as the builder's, all optional). Holds the
#: reference JSON's names (``bl_resnet50_a2_b4``, ...), the builders' own names and the baselines;
#: ``asr_bl.vision`` adds the builders of its other modules (Tables 7-9) when imported.
MODELS: Dict[str, Callable[..., nn.Module]] = _registry()
