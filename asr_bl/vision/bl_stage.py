"""Assembly of an ImageNet bL stage from its branches.

TEMPORARY ADAPTER: the shared bL module lives in ``asr_bl.nn`` (models engineer). Until it
lands, ``_BLStage`` below is a minimal private stand-in with the agreed names (``big``,
``little``, ``little_e.{0,1}``, ``fusion``) and merge ReLU(up(big) + little_e(little)); it is
replaced by the core's module as soon as that exists, without changing any state_dict key.
"""
from typing import Optional

import torch
from torch import nn

from asr_bl.nn.resample import resample_to


class _BLStage(nn.Module):
    """Big and Little branches on the same input, merged, then an optional fusion module."""

    def __init__(
        self,
        big: nn.Module,
        little: nn.Module,
        little_e: nn.Module,
        fusion: Optional[nn.Module],
        upsample: str,
    ) -> None:
        super().__init__()
        self.big = big
        self.little = little
        self.little_e = little_e
        self.fusion = fusion
        self.upsample = upsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = self.big(x)
        little = self.little_e(self.little(x))
        # Up-sample to the Little map's exact size (not x2): odd input sizes then still agree.
        big = resample_to(big, little.shape[2:], dims=(2, 3), mode=self.upsample)
        out = self.relu(big + little)
        return out if self.fusion is None else self.fusion(out)


def build_bl_stage(
    big: nn.Module,
    little: nn.Module,
    little_channels: int,
    out_channels: int,
    fusion: Optional[nn.Module],
    upsample: str,
) -> nn.Module:
    """A bL stage: ``fusion(ReLU(up(big(x)) + little_e(little(x))))``.

    ``little_e`` is created here: a 1x1 conv ``little_channels -> out_channels`` + BN.
    """
    little_e = nn.Sequential(
        nn.Conv2d(little_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
    )
    return _BLStage(big, little, little_e, fusion, upsample)
