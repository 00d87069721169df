"""ResNet-22 and bL-ResNet-22 acoustic models (Chen et al., ICLR 2019, Appendix B, Table 11).

Input ``(B, 3, 64, T)``: 64 log-mel bins with deltas and delta-deltas. Nothing pads in time and
nothing strides in time, so the network has a fixed receptive field of 49 frames and returns one
output per input frame that has 24 frames of context on both sides: ``(B, T - 48, num_classes)``.

An architecture is a :class:`SpeechResNetConfig`: a 5x5 stem (stride 2 in frequency), four
:class:`StageSpec` stages, then the (4x1, 512) projection and the 1x1 output layer. A stage is a
plain ResNet stage (one branch) or a bL-module (two or more branches, merged after time
centre-cropping and frequency up-sampling), optionally followed by a *transition layer* (a
residual block of one 3x3 conv with stride 2 in frequency that keeps the stage's width).
"""
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Tuple

import torch
from torch import nn

from asr_bl.models.blocks import ConvBNReLU, ResidualBlock
from asr_bl.nn import BigLittleModule, MergeConfig, MultiBranchModule, channel_matching

#: Frames of context on each side of a labelled frame (the receptive field is 2 * 24 + 1 = 49).
CONTEXT_FRAMES = 24
#: The receptive field in frames.
WINDOW_FRAMES = 2 * CONTEXT_FRAMES + 1


@dataclass(frozen=True)
class BranchSpec:
    """One branch of a stage.

    Attributes:
        width: channels of every conv in the branch.
        blocks: convolutions per residual block, e.g. ``(2, 2, 1)`` = 5 convs.
        freq_stride: frequency stride of the branch's first conv (2 = the Big-Branch's halving;
            the branch output is up-sampled back in the merge).
    """

    width: int
    blocks: Tuple[int, ...]
    freq_stride: int = 1

    @property
    def num_convs(self) -> int:
        return sum(self.blocks)


@dataclass(frozen=True)
class StageSpec:
    """A stage: its output width, its branches (coarsest first) and whether a transition follows.

    With one branch it is a plain ResNet stage whose width must equal ``width``. With several it
    is a bL-module; narrower branches get a 1x1 conv + BN expansion to ``width`` for an additive
    merge, or all are concatenated and fused by a 1x1 conv + BN for ``merge="concat"``.
    """

    width: int
    branches: Tuple[BranchSpec, ...]
    transition: bool = False


@dataclass(frozen=True)
class SpeechResNetConfig:
    """A full acoustic-model architecture (see the module docstring)."""

    stages: Tuple[StageSpec, ...]
    stem_width: int = 64
    projection_width: int = 512
    num_classes: int = 32000
    num_mel_bins: int = 64
    in_channels: int = 3
    merge: str = "add"
    resample_mode: str = "bilinear"
    description: str = field(default="", compare=False)

    def scaled(self, width: float) -> "SpeechResNetConfig":
        """The same architecture with every channel count multiplied by ``width`` (at least 1)."""
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")

        def s(c: int) -> int:
            return max(1, int(round(c * width)))

        stages = tuple(
            StageSpec(
                width=s(st.width),
                branches=tuple(BranchSpec(s(b.width), b.blocks, b.freq_stride) for b in st.branches),
                transition=st.transition,
            )
            for st in self.stages
        )
        return SpeechResNetConfig(
            stages=stages,
            stem_width=s(self.stem_width),
            projection_width=s(self.projection_width),
            num_classes=self.num_classes,
            num_mel_bins=self.num_mel_bins,
            in_channels=self.in_channels,
            merge=self.merge,
            resample_mode=self.resample_mode,
            description=self.description,
        )


def _branch(in_channels: int, spec: BranchSpec) -> nn.Sequential:
    blocks: List[nn.Module] = []
    channels = in_channels
    for i, num_convs in enumerate(spec.blocks):
        blocks.append(ResidualBlock(channels, spec.width, num_convs, spec.freq_stride if i == 0 else 1))
        channels = spec.width
    return nn.Sequential(*blocks)


def _time_reduction(spec: BranchSpec) -> int:
    return 2 * spec.num_convs


def build_stage(in_channels: int, spec: StageSpec, merge: MergeConfig) -> nn.Module:
    """The module of one stage (without its transition layer)."""
    if len(spec.branches) == 1:
        branch = spec.branches[0]
        if branch.width != spec.width:
            raise ValueError(f"a single-branch stage must have the stage width {spec.width}, got {branch.width}")
        return _branch(in_channels, branch)
    reductions = [_time_reduction(b) for b in spec.branches]
    if any((r - reductions[0]) % 2 for r in reductions):
        raise ValueError(f"branch time reductions {reductions} differ by an odd number of frames")
    branches = [_branch(in_channels, b) for b in spec.branches]
    if merge.mode == "add":
        expansions = [None if b.width == spec.width else channel_matching(b.width, spec.width) for b in spec.branches]
        merge_conv = None
    else:
        expansions = [None] * len(branches)
        total = sum(b.width for b in spec.branches)
        merge_conv = channel_matching(total, spec.width)
    if len(branches) == 2:
        return BigLittleModule(branches[0], branches[1], expansions[1], merge, merge_conv=merge_conv)
    return MultiBranchModule(branches, expansions, merge, merge_conv=merge_conv)


def _stage_time_reduction(spec: StageSpec) -> int:
    # The merge crops every branch to the deepest one.
    return max(_time_reduction(b) for b in spec.branches) + (2 if spec.transition else 0)


class SpeechResNet(nn.Module):
    """A (bL-)ResNet acoustic model with a 49-frame receptive field and no padding in time.

    ``forward(x)``: ``x`` is ``(B, in_channels, num_mel_bins, T)`` with ``T >= 49``; returns logits
    ``(B, T - 48, num_classes)``, output ``t`` predicting input frame ``t + 24``.

    Children: ``stem``, ``layer1..4`` (plain stage or bL-module), ``transition1..3`` where the
    architecture has them, ``projection`` (4x1 conv + BN + ReLU) and ``classifier`` (the 1x1 output
    layer, a Linear applied per frame).
    """

    def __init__(self, config: SpeechResNetConfig) -> None:
        super().__init__()
        self.config = config
        merge = MergeConfig.speech(mode=config.merge, resample_mode=config.resample_mode)
        freq = config.num_mel_bins
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        layers["stem"] = ConvBNReLU(config.in_channels, config.stem_width, (5, 5), freq_stride=2, freq_padding=2)
        freq = (freq + 1) // 2
        reduction = 4
        channels = config.stem_width
        for i, stage in enumerate(config.stages, start=1):
            layers[f"layer{i}"] = build_stage(channels, stage, merge)
            channels = stage.width
            # The merge returns the finest branch's resolution; a single branch may stride itself.
            freq = _conv_out(freq, min(b.freq_stride for b in stage.branches))
            if stage.transition:
                layers[f"transition{i}"] = ResidualBlock(channels, channels, num_convs=1, freq_stride=2)
                freq = _conv_out(freq, 2)
            reduction += _stage_time_reduction(stage)
        if reduction != WINDOW_FRAMES - 1:
            raise ValueError(
                f"the architecture consumes {reduction + 1} frames of context, the acoustic model contract "
                f"is {WINDOW_FRAMES}; adjust the number of convolutions"
            )
        self.body = nn.Sequential(layers)
        self.final_freq = freq
        self.projection = ConvBNReLU(channels, config.projection_width, (freq, 1))
        # The paper's (1x1, 32k) output conv, as a Linear over (B, T, 512): the same weights and MACs,
        # but one GEMM producing (B, T, N) directly; torch 1.13 runs an unthreaded 1x1 conv through
        # its slow im2col path, which made this layer half of the whole forward time on CPU.
        self.classifier = nn.Linear(config.projection_width, config.num_classes)

    @property
    def context(self) -> int:
        """Frames of context needed on each side of an output frame (24)."""
        return CONTEXT_FRAMES

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, T - 48, projection_width)`` embedding before the output layer."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels or x.shape[2] != self.config.num_mel_bins:
            raise ValueError(
                f"expected input (B, {self.config.in_channels}, {self.config.num_mel_bins}, T), got {tuple(x.shape)}"
            )
        if x.shape[3] < WINDOW_FRAMES:
            raise ValueError(f"need at least {WINDOW_FRAMES} frames (24 of context on each side), got {x.shape[3]}")
        return self.projection(self.body(x)).squeeze(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = self.features(x)
        b, t, c = embedding.shape
        # A 2-D (B*T, C) input takes the plain GEMM path; the transposed 3-D view would go through bmm.
        return self.classifier(embedding.reshape(b * t, c)).view(b, t, -1)


def _conv_out(size: int, stride: int) -> int:
    # A 3x3 (or 1x1 shortcut) conv with frequency padding 1 and the given stride.
    return int(math.floor((size - 1) / stride)) + 1
