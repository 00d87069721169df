"""bL-ShuffleNetV2 (Chen et al., ICLR 2019, Appendix A.5, Table 9) on the shared bL core.

The baseline is torchvision's ShuffleNetV2 (Ma et al., 2018; ``torchvision.models.shufflenet_v2_x1_0``
etc.), whose names and channel counts these models follow (``conv1``, ``maxpool``, ``stage2..4``,
``conv5``, ``fc``; units with ``branch1`` / ``branch2``). The paper gives no layout for its bL
version beyond (alpha=2, beta=2) and three totals, so the one built here carries bL-ResNet's recipe
(Appendix A.2, Table 4) over unit for unit:

* A baseline stage is one strided entry unit (to resolution ``R`` and ``C`` channels) followed by
  ``N - 1`` basic units at ``R``. As in bL-ResNet, where the stride of stage ``k + 1`` moves into
  the *transition layer* (``fusion``) of the bL-module of stage ``k``, stage 2 keeps its strided
  entry unit, and stages 2 and 3 then become bL-modules at ``R``: a Big-Branch of ``N - 1`` units
  at ``R/2``, a Little-Branch of ``max(1, N // beta - 1)`` basic units at ``R`` on ``C/alpha``
  channels, ``little_e`` (1x1 conv + BN to ``C``), bilinear up-sampling of the Big output,
  ReLU(big + little), and a strided ``fusion`` unit to the next stage's width: the next stage's
  entry unit, shared by both branches. ``stage4`` keeps its remaining ``N - 1`` basic units
  (plain, as ``layer4`` of bL-ResNet). Along the Big path every stage has its baseline's unit
  count, and every stage ends at the baseline's resolution (28, 14, 7 for a 224 input).
* Nothing but ``little_e`` adds weights, as Table 9's parameter counts demand (the bL models have
  only 0.03 M (1x) and 0.20 M (2x) more than their baselines): the Big-Branch's first unit
  halves the resolution as a *strided basic unit* whose identity half is average-pooled
  (:class:`ShuffleUnit` with stride 2 and equal widths; bL-ResNet's strided blocks likewise have
  AvgPool shortcuts), and the Little-Branch takes its ``C/alpha`` channels by ShuffleNet's own
  channel split (:class:`ChannelSplit`), not by a convolution.

How it compares with Table 9 (``TABLE9`` holds the paper's figures; ``asr_bl-flops
vision-tables`` prints both). Parameters: 2.34 / 3.64 / 7.65 M against 2.33 / 4.80 / 7.60 (1x and
2x within 0.7 %). The 1.5x row's 4.80 M (1.29 M over its baseline's 3.51 M) cannot come from the
layout of the 1x and 2x rows at another width: what a bL layout adds scales with the square of
the width, 0.03 M -> 0.20 M between 1x and 2x, so about 0.1 M at 1.5x. MACs: the paper's "@256"
convention (Table 2: ``bL-SEResNeXt-101@256`` 5.33 GFLOPs = 4.08 x (256/224)^2) counts at 256x256,
where this layout costs 161 / 324 / 643 MMACs against the printed 150 / 298 / 590 (+7.5 to +9 %);
at 224x224 it costs 124 / 248 / 493, far below them, so the printed figures hold at 256. Which
unit of the paper's layout is cheaper than ours the text does not say; these models are the
paper's idea on torchvision's ShuffleNetV2 and the tests pin their measured figures.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import nn

from asr_bl.nn import BigLittleModule, MergeConfig, channel_matching

__all__ = [
    "SHUFFLENET_V2_CHANNELS",
    "STAGE_UNITS",
    "ShuffleUnit",
    "ChannelSplit",
    "BLShuffleNetV2Config",
    "BLShuffleNetV2",
    "bl_shufflenet_v2_x1_0",
    "bl_shufflenet_v2_x1_5",
    "bl_shufflenet_v2_x2_0",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "TABLE9",
]

#: Table 9 (alpha=2, beta=2): name -> (MFLOPs (multiply-accumulates), params in millions) as
#: printed; the bL rows are labelled "@256", the baselines are at 224.
TABLE9: Dict[str, Tuple[float, float]] = {
    "shufflenet_v2_x1_0": (146.0, 2.30),
    "shufflenet_v2_x1_5": (299.0, 3.51),
    "shufflenet_v2_x2_0": (588.0, 7.40),
    "bl_shufflenet_v2_x1_0": (150.0, 2.33),
    "bl_shufflenet_v2_x1_5": (298.0, 4.80),
    "bl_shufflenet_v2_x2_0": (590.0, 7.60),
}

#: Output channels of conv1, stage2, stage3, stage4 and conv5 per width multiplier (torchvision).
SHUFFLENET_V2_CHANNELS: Dict[str, Tuple[int, int, int, int, int]] = {
    "1.0": (24, 116, 232, 464, 1024),
    "1.5": (24, 176, 352, 704, 1024),
    "2.0": (24, 244, 488, 976, 2048),
}
#: Units per stage (stage2, stage3, stage4).
STAGE_UNITS: Tuple[int, int, int] = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle)."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2).contiguous()
    return x.view(batch, channels, height, width)


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit: channel split + one 1x1 / depthwise 3x3 / 1x1 branch (basic unit), or
    two branches on the whole input when it changes the channel count.

    Equal widths make the basic unit; at stride 2 its identity half is average-pooled
    (AvgPool(3, 2, 1)), a down-sampling without weights that torchvision's ShuffleNetV2 never
    needs (its strided units all widen) and bL-ShuffleNetV2's Big-Branches use. A change of
    width uses the two-branch (down-sampling) form, at stride 1 or 2. ``out_channels`` must be
    even. Child names follow torchvision's ``InvertedResidual`` (``branch1``, ``branch2``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"ShuffleUnit needs an even number of output channels, got {out_channels}")
        if stride not in (1, 2):
            raise ValueError(f"ShuffleUnit stride must be 1 or 2, got {stride}")
        branch = out_channels // 2
        self.split = in_channels == out_channels
        branch_in = branch if self.split else in_channels
        if self.split:
            self.branch1 = nn.Sequential() if stride == 1 else nn.AvgPool2d(3, 2, 1)
        else:
            self.branch1 = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, branch, 1, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        self.branch2 = nn.Sequential(
            nn.Conv2d(branch_in, branch, 1, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:
            keep, active = x.chunk(2, dim=1)
            out = torch.cat((self.branch1(keep), self.branch2(active)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ChannelSplit(nn.Module):
    """The first ``channels`` channels of a map (ShuffleNet's channel split; no weights)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] < self.channels:
            raise ValueError(f"cannot split {self.channels} channels off a {x.shape[1]}-channel map")
        return x[:, : self.channels]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def _units(in_channels: int, out_channels: int, count: int, stride: int) -> nn.Sequential:
    units: List[nn.Module] = [ShuffleUnit(in_channels, out_channels, stride)]
    units += [ShuffleUnit(out_channels, out_channels) for _ in range(count - 1)]
    return nn.Sequential(*units)


@dataclass
class BLShuffleNetV2Config:
    """Hyper-parameters of a bL-ShuffleNetV2 (see the module docstring for the layout).

    Attributes:
        width: ShuffleNetV2's width multiplier, ``"1.0"``, ``"1.5"`` or ``"2.0"``.
        alpha: width reduction of the Little-Branch (the Little width ``C/alpha`` is rounded
            down to an even number, which a ShuffleNet unit needs).
        beta: depth reduction of the Little-Branch.
        num_classes: classifier outputs.
        upsample: ``"bilinear"`` (the paper's text) or ``"nearest"``.
    """

    width: str = "1.0"
    alpha: int = 2
    beta: int = 2
    num_classes: int = 1000
    upsample: str = "bilinear"

    def __post_init__(self) -> None:
        if self.width not in SHUFFLENET_V2_CHANNELS:
            raise ValueError(f"width {self.width!r} is not one of {sorted(SHUFFLENET_V2_CHANNELS)}")
        if self.alpha < 1 or self.beta < 1:
            raise ValueError(f"alpha and beta must be >= 1, got alpha={self.alpha} beta={self.beta}")


class BLShuffleNetV2(nn.Module):
    """bL-ShuffleNetV2: images ``(B, 3, H, W)`` -> logits ``(B, num_classes)``."""

    def __init__(self, config: BLShuffleNetV2Config) -> None:
        super().__init__()
        self.config = config
        stem, c2, c3, c4, c5 = SHUFFLENET_V2_CHANNELS[config.width]
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # stage2: its strided entry unit, then the bL-module whose fusion is stage3's entry unit.
        self.stage2 = nn.Sequential(
            ShuffleUnit(stem, c2, stride=2), self._bl_stage(c2, STAGE_UNITS[0], next_channels=c3)
        )
        self.stage3 = self._bl_stage(c3, STAGE_UNITS[1], next_channels=c4)
        self.stage4 = _units(c4, c4, STAGE_UNITS[2] - 1, stride=1)
        self.conv5 = nn.Sequential(
            nn.Conv2d(c4, c5, 1, bias=False), nn.BatchNorm2d(c5), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(c5, config.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _bl_stage(self, channels: int, units: int, next_channels: int) -> BigLittleModule:
        """The bL-module of a stage of ``units`` units at ``channels`` (input at the stage's
        resolution ``R``); its fusion is the next stage's strided entry unit."""
        cfg = self.config
        little_channels = channels // cfg.alpha
        little_channels -= little_channels % 2
        big = _units(channels, channels, units - 1, stride=2)
        little = nn.Sequential(
            ChannelSplit(little_channels),
            *_units(little_channels, little_channels, max(1, units // cfg.beta - 1), stride=1),
        )
        return BigLittleModule(
            big=big,
            little=little,
            little_e=channel_matching(little_channels, channels),
            config=MergeConfig.vision(mode="add", resample_mode=cfg.upsample),
            fusion=ShuffleUnit(channels, next_channels, stride=2),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> conv5 map ``(B, C5, H/32, W/32)``."""
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x).mean((2, 3)))


def bl_shufflenet_v2_x1_0(num_classes: int = 1000, alpha: int = 2, beta: int = 2,
                          upsample: str = "bilinear") -> BLShuffleNetV2:
    """bL-ShuffleNetV2 1x (Table 9: 150 MFLOPs at 256x256, 2.33 M params; alpha=2, beta=2)."""
    return BLShuffleNetV2(BLShuffleNetV2Config("1.0", alpha, beta, num_classes, upsample))


def bl_shufflenet_v2_x1_5(num_classes: int = 1000, alpha: int = 2, beta: int = 2,
                          upsample: str = "bilinear") -> BLShuffleNetV2:
    """bL-ShuffleNetV2 1.5x (Table 9: 298 MFLOPs at 256x256, 4.80 M params; alpha=2, beta=2)."""
    return BLShuffleNetV2(BLShuffleNetV2Config("1.5", alpha, beta, num_classes, upsample))


def bl_shufflenet_v2_x2_0(num_classes: int = 1000, alpha: int = 2, beta: int = 2,
                          upsample: str = "bilinear") -> BLShuffleNetV2:
    """bL-ShuffleNetV2 2x (Table 9: 590 MFLOPs at 256x256, 7.60 M params; alpha=2, beta=2)."""
    return BLShuffleNetV2(BLShuffleNetV2Config("2.0", alpha, beta, num_classes, upsample))


def shufflenet_v2_x1_0(num_classes: int = 1000) -> nn.Module:
    """torchvision's ShuffleNetV2 1x, untrained: Table 9's baseline (146 MFLOPs, 2.30 M)."""
    import torchvision

    return torchvision.models.shufflenet_v2_x1_0(weights=None, num_classes=num_classes)


def shufflenet_v2_x1_5(num_classes: int = 1000) -> nn.Module:
    """torchvision's ShuffleNetV2 1.5x, untrained: Table 9's baseline (299 MFLOPs, 3.51 M)."""
    import torchvision

    return torchvision.models.shufflenet_v2_x1_5(weights=None, num_classes=num_classes)


def shufflenet_v2_x2_0(num_classes: int = 1000) -> nn.Module:
    """torchvision's ShuffleNetV2 2x, untrained: Table 9's baseline (588 MFLOPs, 7.40 M)."""
    import torchvision

    return torchvision.models.shufflenet_v2_x2_0(weights=None, num_classes=num_classes)
