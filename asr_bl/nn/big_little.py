"""The Big-Little module: K parallel branches at their own scale and width, merged into one map.

A bL-module (Chen et al., ICLR 2019, Sec. 3) feeds the same input to every branch. Branch 0 is the
*Big-Branch* (wide, working at a reduced resolution); the others are *Little-Branches* (narrow, at
higher resolution). Before the merge each branch output is

1. centre-cropped, along ``crop_dims``, to the shortest branch (speech: time, because the
   convolutions are unpadded in time and a deeper branch has consumed more context),
2. brought to the merge width by its optional *expansion* (1x1 conv + BN, "little_e"),
3. resampled, along ``resample_dims``, to the largest size among the branches (speech: frequency
   only; images: both axes).

The merge is then either a sum with unit weights (``mode="add"``) or a concatenation along channels
followed by ``merge_conv`` (``mode="concat"``); an optional ReLU follows, and an optional ``fusion``
module (e.g. the post-merge residual block of the official ImageNet models) is applied last.

Two classes share this logic:

* :class:`BigLittleModule` (K = 2) names its children ``big``, ``little``, ``little_e``,
  ``merge_conv`` and ``fusion``, the state_dict names of the official bL-Net checkpoints.
* :class:`MultiBranchModule` (any K, e.g. the pyramid bL-PYR) holds ``branches.<k>`` and
  ``expansions.<k>``.
"""
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from asr_bl.nn.resample import RESAMPLE_MODES, center_crop, resample_to

MERGE_MODES = ("add", "concat")


@dataclass(frozen=True)
class MergeConfig:
    """How the branch outputs of a bL-module are aligned and merged.

    Attributes:
        mode: ``"add"`` (unit-weight sum, the paper's default) or ``"concat"`` (channel concatenation
            followed by the module's ``merge_conv``, typically 1x1 conv + BN).
        resample_mode: ``"bilinear"`` (paper) or ``"nearest"`` (official ImageNet code).
        resample_dims: tensor dims along which branches may differ in scale; every branch is
            resampled to the largest size along them. ``(2,)`` = frequency only for (B, C, F, T)
            speech maps, ``(2, 3)`` = both axes for images.
        crop_dims: tensor dims centre-cropped to the shortest branch; ``(3,)`` = time for speech.
        activation: apply ReLU after the merge.
        align_corners: passed to bilinear interpolation.
    """

    mode: str = "add"
    resample_mode: str = "bilinear"
    resample_dims: Tuple[int, ...] = (2, 3)
    crop_dims: Tuple[int, ...] = ()
    activation: bool = True
    align_corners: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MERGE_MODES:
            raise ValueError(f"merge mode {self.mode!r} is not one of {MERGE_MODES}")
        if self.resample_mode not in RESAMPLE_MODES:
            raise ValueError(f"resample mode {self.resample_mode!r} is not one of {RESAMPLE_MODES}")
        if set(self.resample_dims) & set(self.crop_dims):
            raise ValueError("a dim cannot be both resampled and cropped")

    @classmethod
    def speech(cls, mode: str = "add", resample_mode: str = "bilinear") -> "MergeConfig":
        """(B, C, freq, time) maps: resample frequency only, centre-crop time."""
        return cls(mode=mode, resample_mode=resample_mode, resample_dims=(2,), crop_dims=(3,))

    @classmethod
    def vision(cls, mode: str = "add", resample_mode: str = "nearest") -> "MergeConfig":
        """(B, C, H, W) images: resample both axes (nearest, as the official ImageNet code)."""
        return cls(mode=mode, resample_mode=resample_mode, resample_dims=(2, 3), crop_dims=())

    def with_mode(self, mode: str) -> "MergeConfig":
        """A copy with another merge mode."""
        return replace(self, mode=mode)


def merge_branches(
    outputs: Sequence[torch.Tensor],
    config: MergeConfig,
    merge_conv: Optional[nn.Module] = None,
) -> torch.Tensor:
    """Crop, resample and merge already-expanded branch outputs as ``config`` says.

    ``outputs`` must agree in batch size and, for ``mode="add"``, in channels; dims that are neither
    cropped nor resampled must agree exactly. Returns the merged map (before any ``fusion``).
    """
    if not outputs:
        raise ValueError("no branch outputs to merge")
    ref = outputs[0]
    aligned: List[torch.Tensor] = []
    crop_sizes = [min(o.shape[d] for o in outputs) for d in config.crop_dims]
    resample_sizes = [max(o.shape[d] for o in outputs) for d in config.resample_dims]
    for k, out in enumerate(outputs):
        for d, size in zip(config.crop_dims, crop_sizes):
            out = center_crop(out, size, d)
        out = resample_to(out, resample_sizes, config.resample_dims, config.resample_mode, config.align_corners)
        first = aligned[0] if aligned else out
        if out.shape[0] != ref.shape[0] or out.shape[2:] != first.shape[2:]:
            raise ValueError(
                f"branch {k} output {tuple(out.shape)} does not match branch 0 {tuple(first.shape)} "
                "after cropping/resampling; check the branches' strides and the merge dims"
            )
        aligned.append(out)
    if config.mode == "add":
        channels = {o.shape[1] for o in aligned}
        if len(channels) != 1:
            raise ValueError(
                f"additive merge needs equal channels, got {[o.shape[1] for o in aligned]}; "
                "give the narrower branches an expansion (1x1 conv + BN)"
            )
        merged = aligned[0]
        for out in aligned[1:]:
            merged = merged + out
    else:
        if merge_conv is None:
            raise ValueError("concat merge needs a merge_conv (e.g. 1x1 conv + BN) to fuse the channels")
        merged = merge_conv(torch.cat(aligned, dim=1))
    if config.activation:
        merged = torch.relu(merged)
    return merged


def _optional(module: Optional[nn.Module]) -> nn.Module:
    return nn.Identity() if module is None else module


class BigLittleModule(nn.Module):
    """A two-branch bL-module: ``fusion(act(merge(big(x), little_e(little(x)))))``.

    Children keep the official checkpoints' names: ``big``, ``little``, ``little_e`` (absent when
    ``None``), ``merge_conv`` (concat only) and ``fusion`` (absent when ``None``).

    Args:
        big: the Big-Branch (reduced resolution; its output is resampled up to the little's).
        little: the Little-Branch (full resolution, narrow).
        little_e: channel matching for the little output, applied before the merge (1x1 conv + BN).
        config: alignment and merge settings.
        merge_conv: for ``config.mode == "concat"``, maps the concatenated channels to the output.
        fusion: optional module applied after the merge and activation.
    """

    def __init__(
        self,
        big: nn.Module,
        little: nn.Module,
        little_e: Optional[nn.Module] = None,
        config: MergeConfig = MergeConfig(),
        merge_conv: Optional[nn.Module] = None,
        fusion: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if (config.mode == "concat") != (merge_conv is not None):
            raise ValueError("merge_conv is required for, and only for, a concat merge")
        self.config = config
        self.big = big
        self.little = little
        # add_module(None) keeps the attribute but leaves it out of the state_dict.
        self.add_module("little_e", little_e)
        self.add_module("merge_conv", merge_conv)
        self.add_module("fusion", fusion)

    def branch_outputs(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The two branch outputs after channel matching, before alignment and merge."""
        little = self.little(x)
        if self.little_e is not None:
            little = self.little_e(little)
        return [self.big(x), little]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = merge_branches(self.branch_outputs(x), self.config, self.merge_conv)
        if self.fusion is not None:
            merged = self.fusion(merged)
        return merged


class MultiBranchModule(nn.Module):
    """A K-branch bL-module (the pyramid form), branch 0 the biggest/coarsest by convention.

    Args:
        branches: K modules applied to the same input.
        expansions: per branch, ``None`` or a channel-matching module applied to its output
            (an ``nn.Identity`` placeholder keeps the indices aligned with ``branches``).
        config: alignment and merge settings.
        merge_conv: for concat merges.
        fusion: optional module after the merge and activation.
    """

    def __init__(
        self,
        branches: Sequence[nn.Module],
        expansions: Optional[Sequence[Optional[nn.Module]]] = None,
        config: MergeConfig = MergeConfig(),
        merge_conv: Optional[nn.Module] = None,
        fusion: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if len(branches) < 2:
            raise ValueError(f"a multi-branch module needs at least 2 branches, got {len(branches)}")
        if expansions is None:
            expansions = [None] * len(branches)
        if len(expansions) != len(branches):
            raise ValueError(f"{len(expansions)} expansions for {len(branches)} branches")
        if (config.mode == "concat") != (merge_conv is not None):
            raise ValueError("merge_conv is required for, and only for, a concat merge")
        self.config = config
        self.branches = nn.ModuleList(branches)
        self.expansions = nn.ModuleList([_optional(e) for e in expansions])
        self.add_module("merge_conv", merge_conv)
        self.add_module("fusion", fusion)

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    def branch_outputs(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The K branch outputs after channel matching, before alignment and merge."""
        return [e(b(x)) for b, e in zip(self.branches, self.expansions)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = merge_branches(self.branch_outputs(x), self.config, self.merge_conv)
        if self.fusion is not None:
            merged = self.fusion(merged)
        return merged
