"""Residual building blocks of the ImageNet models: bottleneck, ResNeXt grouping, squeeze-excitation.

Module and attribute names follow the official Big-Little Net code (IBM's BigLittleNet repository)
and torchvision's ResNet, so that both families of published checkpoints load by name:
``conv1/bn1/conv2/bn2/conv3/bn3``, ``downsample`` (the shortcut) and ``se_layer.fc1/fc2``.
"""
from typing import List, Optional

import torch
from torch import nn

__all__ = [
    "BOTTLENECK_EXPANSION",
    "SqueezeExcitation",
    "Bottleneck",
    "bottleneck_width",
    "make_shortcut",
    "make_stage",
]

#: Ratio between a bottleneck's output channels and its inner (3x3) channels for groups=1.
BOTTLENECK_EXPANSION = 4


def bottleneck_width(out_channels: int, groups: int = 1, base_width: int = 64) -> int:
    """Channels of the grouped 3x3 conv of a bottleneck with ``out_channels`` outputs.

    ResNet: ``out/4``. ResNeXt ``CxDd``: ``C`` groups of ``D * out/256`` channels, i.e. the
    ``C x Dd`` name is read at the 256-output stage. Integer arithmetic equals the official
    ``floor(out * base_width / 64) // 4 * groups`` and torchvision's ``int(out/4 * base_width/64) * groups``.
    """
    per_group = (out_channels * base_width // 64) // BOTTLENECK_EXPANSION
    if per_group < 1:
        raise ValueError(
            f"bottleneck with {out_channels} outputs, base_width={base_width}: less than one "
            "channel per group; raise base_width or out_channels"
        )
    return per_group * groups


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al.): channel gates from global average pooling.

    The two fully connected layers are 1x1 convs with bias (``fc1``, ``fc2``), as in the official
    bL-SEResNeXt and Cadene's SENet code, so their checkpoints map onto it.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, optionally grouped) -> 1x1 residual block ("ResNet v1.5" stride).

    Args:
        in_channels: input channels.
        out_channels: output channels (``4 x`` the inner width for a plain ResNet).
        stride: stride of the 3x3 conv.
        groups: cardinality of the 3x3 conv (ResNeXt); 1 for ResNet.
        base_width: ResNeXt's ``d`` per group at the 256-output stage; 64 for ResNet.
        shortcut: module mapping the input to the output's shape, stored as ``downsample``;
            ``None`` means identity (then shapes must already agree).
        se_reduction: squeeze-excitation reduction applied to the residual before the add
            (``se_layer``); 0 disables it.
        last_relu: apply the ReLU after the add. The official bL-Nets end their Big-Branch
            without it, since the merge that follows applies its own ReLU.
    """

    expansion = BOTTLENECK_EXPANSION

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 1,
        base_width: int = 64,
        shortcut: Optional[nn.Module] = None,
        se_reduction: int = 0,
        last_relu: bool = True,
    ) -> None:
        super().__init__()
        width = bottleneck_width(out_channels, groups, base_width)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(
            width, width, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut
        # Registered after ``downsample`` so the state_dict order matches the official one.
        self.se_layer = SqueezeExcitation(out_channels, se_reduction) if se_reduction > 0 else None
        self.last_relu = last_relu
        if shortcut is None and (stride != 1 or in_channels != out_channels):
            raise ValueError(
                f"Bottleneck {in_channels}->{out_channels} stride {stride} needs a shortcut module"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se_layer is not None:
            out = self.se_layer(out)
        identity = x if self.downsample is None else self.downsample(x)
        out = out + identity
        return self.relu(out) if self.last_relu else out


def make_shortcut(
    in_channels: int, out_channels: int, stride: int, style: str = "avgpool"
) -> Optional[nn.Module]:
    """The projection shortcut of a residual block, or ``None`` when identity suffices.

    ``style="avgpool"`` (official bL-Nets): ``AvgPool2d(3, 2, 1)`` when strided, followed by a
    1x1 conv + BN only when the channels change. Its parameter names therefore depend on the
    stride (``downsample.1/.2`` after a pool, ``downsample.0/.1`` without), which the official
    checkpoints rely on. ``style="conv"`` (torchvision ResNet): a strided 1x1 conv + BN.
    """
    if stride not in (1, 2):
        raise ValueError(f"shortcut stride must be 1 or 2, got {stride}")
    if style == "avgpool":
        layers: List[nn.Module] = []
        if stride != 1:
            layers.append(nn.AvgPool2d(kernel_size=3, stride=2, padding=1))
        if in_channels != out_channels:
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False))
            layers.append(nn.BatchNorm2d(out_channels))
        return nn.Sequential(*layers) if layers else None
    if style == "conv":
        if stride == 1 and in_channels == out_channels:
            return None
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    raise ValueError(f"unknown shortcut style {style!r}; use 'avgpool' or 'conv'")


def make_stage(
    in_channels: int,
    out_channels: int,
    num_blocks: int,
    stride: int = 1,
    groups: int = 1,
    base_width: int = 64,
    se_reduction: int = 0,
    shortcut_style: str = "avgpool",
    last_relu: bool = True,
) -> nn.Sequential:
    """``num_blocks`` bottlenecks, the first one strided and projecting ``in -> out`` channels.

    ``last_relu=False`` drops the ReLU after the add of the last block (only when the stage has
    more than one block, as in the official code; a single block keeps it).
    """
    if num_blocks < 1:
        raise ValueError(f"a stage needs at least one block, got {num_blocks}")
    blocks: List[nn.Module] = [
        Bottleneck(
            in_channels,
            out_channels,
            stride=stride,
            groups=groups,
            base_width=base_width,
            shortcut=make_shortcut(in_channels, out_channels, stride, shortcut_style),
            se_reduction=se_reduction,
        )
    ]
    for index in range(1, num_blocks):
        blocks.append(
            Bottleneck(
                out_channels,
                out_channels,
                groups=groups,
                base_width=base_width,
                se_reduction=se_reduction,
                last_relu=last_relu or index < num_blocks - 1,
            )
        )
    return nn.Sequential(*blocks)
