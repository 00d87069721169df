"""Small building blocks shared by the speech and vision bL models."""
from torch import nn


def channel_matching(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (no bias) + BatchNorm: the ``little_e`` expansion that brings a narrow branch to the
    merge width. As an ``nn.Sequential`` its parameters are named ``0.weight`` (conv) and
    ``1.weight`` / ``1.bias`` (BN), as in the official bL-Net checkpoints."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
    )
