"""Convolution blocks that never pad in time, for dense per-frame prediction on (B, C, freq, time).

A 3x3 convolution here pads one bin in frequency and none in time, so it shortens the time axis by
2 and an output frame depends only on input frames within its receptive field. Strides are in
frequency only. Residual shortcuts are centre-cropped in time to the block's output (as in Saon et
al., 2017), so evaluating a long utterance at once equals evaluating every window separately.
"""
from typing import Optional

import torch
from torch import nn

from asr_bl.nn import center_crop


def conv3x3_freq_padded(in_channels: int, out_channels: int, freq_stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padded in frequency only, strided in frequency only, no bias (BN follows)."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=3, stride=(freq_stride, 1), padding=(1, 0), bias=False
    )


class ConvBNReLU(nn.Sequential):
    """Conv (padded in frequency only) + BN + ReLU; used for the 5x5 stem and the (4x1) projection."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple, freq_stride: int = 1, freq_padding: int = 0
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size=kernel_size,
                stride=(freq_stride, 1),
                padding=(freq_padding, 0),
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """A residual block of ``num_convs`` (1 or 2) unpadded-in-time 3x3 convolutions.

    ``y = ReLU(BN(conv_n(...ReLU(BN(conv_1(x))))) + shortcut(crop_time(x)))``, the first conv
    strided by ``freq_stride`` in frequency. The shortcut is the time-centre-cropped input, through a
    1x1 conv + BN (``downsample``) when the width or the frequency resolution changes.

    ``num_convs=1`` is the paper's *transition layer* (one strided 3x3 conv in a residual block) and
    the odd last block of a five-conv bL branch.
    """

    def __init__(self, in_channels: int, out_channels: int, num_convs: int = 2, freq_stride: int = 1) -> None:
        super().__init__()
        if num_convs not in (1, 2):
            raise ValueError(f"a residual block has 1 or 2 convolutions, got {num_convs}")
        self.num_convs = num_convs
        self.conv1 = conv3x3_freq_padded(in_channels, out_channels, freq_stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2: Optional[nn.Conv2d] = None
        self.bn2: Optional[nn.BatchNorm2d] = None
        if num_convs == 2:
            self.conv2 = conv3x3_freq_padded(out_channels, out_channels)
            self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: Optional[nn.Sequential] = None
        if in_channels != out_channels or freq_stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(freq_stride, 1), bias=False),
                nn.BatchNorm2d(out_channels),
            )

    @property
    def time_reduction(self) -> int:
        """Frames lost in time: 2 per 3x3 convolution."""
        return 2 * self.num_convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(x))
        if self.conv2 is not None:
            out = self.bn2(self.conv2(self.relu(out)))
        shortcut = center_crop(x, x.shape[3] - self.time_reduction, dim=3)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.relu(out + shortcut)
