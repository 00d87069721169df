"""The ablations of bL-ResNet (Chen et al., ICLR 2019, Appendix A.4) on the shared bL core: fewer
merges (m = 2, 1) for bL-ResNet-50 and more (m = 7) for bL-ResNet-101 (Table 8), and three
branches for bL-ResNet-50 (K = 3, Table 7; :class:`BLNetThreeBranch`, at the end of this file).
The concatenation merge of Table 7 is an option of ``BLNetConfig`` (``merge="concat"``).

The default bL-ResNet merges four times (m = 4): after the bL stem and at the end of ``layer1``,
``layer2`` and ``layer3``, i.e. "before every change of feature size, except for the first stride
convolution". The text gives the counts only; the layouts built here are the readings that
reproduce Table 8 (the tests pin the deviations):

* Fewer merges (``merge_at``): a bL-module without a merge keeps its two branches apart, and each
  runs on into the next stage as its own path. Whatever exists only for the merge goes: the
  Little side's ``l_conv2`` in the stem, ``little_e`` in a stage. The Big path keeps the stage's
  transition block (``fusion``), unstrided since the Big path is already at the next stage's
  resolution (the stem's ``bl_init`` likewise stays on the Big path); the Little path reaches the
  next stage's resolution by striding the first block of its next Little-Branch (AvgPool shortcut,
  as every strided block). Table 8's m = 2 keeps the merges of ``layer2`` and ``layer3``, m = 1
  only the one of ``layer3`` (the merges are dropped from the input side): 2.73 / 2.63 GMACs
  against the paper's 2.74 / 2.64.
* More merges (``modules``): a stage is split into several bL-modules at the same dimension
  ("those extra merges happened at the feature dimension"), its blocks shared out in order
  (earlier modules take the remainder); each module has its own Big-Branch (first block strided
  from the merged map), Little-Branch (``max(1, n // beta - 1)`` blocks), ``little_e`` and an
  unstrided ``fusion`` block, except the stage's last module, whose ``fusion`` takes the stage's
  stride. m = 1 (stem) + the sum of ``modules``. Each extra merge costs the same MACs wherever it
  goes (a fusion block at full resolution instead of a Big block at half, a ``little_e``, a
  strided Big block), so every placement of m = 7's three extra merges gives Table 8's 5.21
  GMACs; the parameters single one out: ``layer2`` as two bL-modules and ``layer3`` as three,
  44.44 M as in the paper ((1, 1, 4) gives 45.48 M, (2, 2, 2) 43.13 M, (2, 1, 3) 44.17 M).

The stem's modules are named as :class:`~asr_bl.vision.models.BLNet`'s (``conv1``, ``b_conv0``,
``l_conv0..2``, ``bl_init``), then ``layer1..3`` (each an
``nn.ModuleList`` of bL-modules; for an unmerged module the children ``big``, ``little`` and
``fusion`` are kept in a :class:`SplitModule`), ``layer4`` and ``fc``.
"""
from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch import nn

from asr_bl.nn import BigLittleModule, MergeConfig, MultiBranchModule, channel_matching, merge_branches
from asr_bl.vision.blocks import Bottleneck, make_stage
from asr_bl.vision.models import STAGE_WIDTHS, _conv_bn, _init_weights, _stage_depths

__all__ = ["MergeLayoutConfig", "SplitModule", "BLNetMergeLayout", "BLNetThreeBranch", "bl_resnet50_m2",
           "bl_resnet50_m1", "bl_resnet50_k3", "TABLE7_K3",
           "bl_resnet101_m7", "TABLE8"]

#: Table 8 (alpha=2, beta=4): name -> (GMACs at 224, params in millions) as printed.
TABLE8 = {
    "bl_resnet50_m2": (2.74, 26.66),
    "bl_resnet50_m1": (2.64, 26.64),
    "bl_resnet101_m7": (5.21, 44.44),
}


@dataclass
class MergeLayoutConfig:
    """A bL-ResNet (official layout, :class:`~asr_bl.vision.models.BLNetConfig`'s depths and
    widths) with its merges placed explicitly.

    Attributes:
        depth, alpha, beta, num_classes, upsample: as for ``BLNetConfig`` (ResNet blocks only).
        merge_at: which of the four places merge: 0 = the stem, 1..3 = the end of ``layer1..3``.
            3 is required (``layer4`` is a single path).
        modules: bL-modules per stage ``layer1..3`` (each merging once; only for merged stages).
    """

    depth: int = 50
    alpha: int = 2
    beta: int = 4
    num_classes: int = 1000
    upsample: str = "nearest"
    merge_at: Tuple[int, ...] = (0, 1, 2, 3)
    modules: Tuple[int, int, int] = (1, 1, 1)

    def __post_init__(self) -> None:
        depths = _stage_depths(self.depth)
        if 3 not in self.merge_at or not set(self.merge_at) <= {0, 1, 2, 3}:
            raise ValueError(f"merge_at {self.merge_at} must be a subset of (0, 1, 2, 3) holding 3")
        if len(self.modules) != 3 or min(self.modules) < 1:
            raise ValueError(f"modules {self.modules} must give 3 positive counts")
        for stage, count in enumerate(self.modules, start=1):
            if count > 1 and stage not in self.merge_at:
                raise ValueError(f"layer{stage} has {count} bL-modules but no merge")
            if depths[stage - 1] < 2 * count:
                raise ValueError(f"layer{stage}: {depths[stage - 1]} blocks cannot fill {count} modules")

    @property
    def num_merges(self) -> int:
        """m of Table 8: the stem's merge (if any) plus one per bL-module of a merged stage."""
        return int(0 in self.merge_at) + sum(
            self.modules[s - 1] for s in (1, 2, 3) if s in self.merge_at)


class SplitModule(nn.Module):
    """An unmerged bL-module: ``(big, little)`` in, ``(fusion(big(big_in)), little(little_in))``
    out, the two paths kept apart."""

    def __init__(self, big: nn.Module, little: nn.Module, fusion: nn.Module) -> None:
        super().__init__()
        self.big, self.little, self.fusion = big, little, fusion

    def forward(self, paths: Tuple[torch.Tensor, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        big, little = paths
        return self.fusion(self.big(big)), self.little(little)


def _share(blocks: int, parts: int) -> List[int]:
    return [blocks // parts + (1 if i < blocks % parts else 0) for i in range(parts)]


class BLNetMergeLayout(nn.Module):
    """bL-ResNet with the merges of :class:`MergeLayoutConfig`: images -> logits."""

    def __init__(self, config: MergeLayoutConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        depths = _stage_depths(cfg.depth)
        stem, little_stem = STAGE_WIDTHS[0], STAGE_WIDTHS[0] // cfg.alpha
        self.conv1, self.bn1 = _conv_bn(3, stem, 7, stride=2)
        self.relu = nn.ReLU(inplace=True)
        self.b_conv0, self.bn_b0 = _conv_bn(stem, stem, 3, stride=2)
        self.l_conv0, self.bn_l0 = _conv_bn(stem, little_stem, 3)
        self.l_conv1, self.bn_l1 = _conv_bn(little_stem, little_stem, 3, stride=2)
        self.stem_merged = 0 in cfg.merge_at
        if self.stem_merged:
            self.l_conv2, self.bn_l2 = _conv_bn(little_stem, stem, 1)
        self.bl_init, self.bn_bl_init = _conv_bn(stem, stem, 1)

        big_in, little_in = stem, stem if self.stem_merged else little_stem
        little_strided = False  # the Little path is at the stage's resolution after the stem
        for index in range(3):
            stage = index + 1
            out = STAGE_WIDTHS[index] * Bottleneck.expansion
            little_out = out // cfg.alpha
            modules: List[nn.Module] = []
            if stage in cfg.merge_at:
                shares = _share(depths[index], cfg.modules[index])
                for k, blocks in enumerate(shares):
                    last = k == len(shares) - 1
                    modules.append(BigLittleModule(
                        big=self._stage(big_in, out, blocks - 1, 2, last_relu=False),
                        little=self._stage(little_in, little_out, max(1, blocks // cfg.beta - 1),
                                           2 if little_strided and k == 0 else 1),
                        little_e=channel_matching(little_out, out),
                        config=MergeConfig.vision(mode="add", resample_mode=cfg.upsample),
                        fusion=self._stage(out, out, 1, 2 if last and index < 2 else 1),
                    ))
                    big_in = little_in = out
                little_strided = False
            else:
                modules.append(SplitModule(
                    big=self._stage(big_in, out, depths[index] - 1, 2, last_relu=False),
                    little=self._stage(little_in, little_out, max(1, depths[index] // cfg.beta - 1),
                                       2 if little_strided else 1),
                    fusion=self._stage(out, out, 1, 1),
                ))
                big_in, little_in = out, little_out
                little_strided = True
            setattr(self, f"layer{stage}", nn.ModuleList(modules))
        out = STAGE_WIDTHS[3] * Bottleneck.expansion
        self.layer4 = make_stage(big_in, out, depths[3], stride=2, shortcut_style="avgpool")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(out, cfg.num_classes)
        _init_weights(self)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int,
               last_relu: bool = True) -> nn.Sequential:
        return make_stage(in_channels, out_channels, blocks, stride=stride, shortcut_style="avgpool",
                          last_relu=last_relu)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> layer4 map ``(B, 2048, H/32, W/32)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        big = self.bn_b0(self.b_conv0(x))
        little = self.relu(self.bn_l1(self.l_conv1(self.relu(self.bn_l0(self.l_conv0(x))))))
        state: object
        if self.stem_merged:
            x = self.relu(big + self.bn_l2(self.l_conv2(little)))
            state = self.relu(self.bn_bl_init(self.bl_init(x)))
        else:
            state = (self.relu(self.bn_bl_init(self.bl_init(self.relu(big)))), little)
        for stage in (self.layer1, self.layer2, self.layer3):
            for module in stage:
                if isinstance(module, SplitModule):
                    state = module(state)
                elif isinstance(state, tuple):  # the first merge after split paths
                    big_out = module.big(state[0])
                    little_out = module.little_e(module.little(state[1]))
                    state = module.fusion(merge_branches([big_out, little_out], module.config))
                else:
                    state = module(state)
        assert isinstance(state, torch.Tensor)
        return self.layer4(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def bl_resnet50_m2(num_classes: int = 1000, upsample: str = "nearest") -> BLNetMergeLayout:
    """bL-ResNet-50 (alpha=2, beta=4) with m = 2 merges (Table 8: 2.74 GMACs, 26.66 M): only
    ``layer2`` and ``layer3`` merge; stem and ``layer1`` run Big and Little apart."""
    return BLNetMergeLayout(MergeLayoutConfig(50, 2, 4, num_classes, upsample, merge_at=(2, 3)))


def bl_resnet50_m1(num_classes: int = 1000, upsample: str = "nearest") -> BLNetMergeLayout:
    """bL-ResNet-50 (alpha=2, beta=4) with m = 1 merge (Table 8: 2.64 GMACs, 26.64 M): only
    ``layer3`` merges."""
    return BLNetMergeLayout(MergeLayoutConfig(50, 2, 4, num_classes, upsample, merge_at=(3,)))


def bl_resnet101_m7(num_classes: int = 1000, upsample: str = "nearest") -> BLNetMergeLayout:
    """bL-ResNet-101 (alpha=2, beta=4) with m = 7 merges (Table 8: 5.21 GMACs, 44.44 M): the stem,
    ``layer1``, ``layer2`` as two bL-modules (4 + 4 blocks) and ``layer3`` as three (6 + 6 + 6)."""
    return BLNetMergeLayout(MergeLayoutConfig(101, 2, 4, num_classes, upsample, modules=(1, 2, 3)))


# ----------------------------------------------------------------------------- three branches

#: Table 7's three-branch row (alpha=2, beta=4): (GMACs at 224, params in millions) as printed.
TABLE7_K3 = (3.91, 27.23)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                  relu: bool = True) -> nn.Sequential:
    conv, bn = _conv_bn(in_channels, out_channels, kernel, stride)
    return nn.Sequential(conv, bn, nn.ReLU(inplace=True)) if relu else nn.Sequential(conv, bn)


class BLNetThreeBranch(nn.Module):
    """bL-ResNet-50 with three branches per bL-module (K = 3, scales 1/4, 1/2, 1; Table 7), built
    on the core's K-branch :class:`~asr_bl.nn.MultiBranchModule` (the one bL-PYR uses).

    Reading. Table 7 has K = 3 costing *more* than K = 2 (3.91 vs 2.85 GMACs) for few more
    parameters (27.23 vs 26.69 M): only a branch finer than K = 2's Little-Branch adds MACs that
    cheaply, so K = 3 is K = 2 with one more Little-Branch at twice the Little's resolution. The
    Big-Branch keeps K = 2's resolution ("ResNet-50 served as the Big-Branch at the scale of 1/4":
    56x56 is its input in ``layer1``) and every module merges at its finest branch, as the paper
    merges "at the highest resolution". So the stem merges at 112x112 (``branches.2``: 3x3 conv to
    ``64/alpha^2`` + 1x1 conv back to 64 at full resolution beside the two K = 2 stem paths), and
    in ``layer1..3`` (input at resolution ``R``, ``C`` output channels, ``N`` blocks):

    * ``branches.0`` (Big): AvgPool(3, 2, 1) then K = 2's Big-Branch (``N - 1`` blocks, first one
      strided, ``C`` wide) at ``R/4``;
    * ``branches.1``: K = 2's Little-Branch, ``C/alpha`` wide, ``max(1, N // beta - 1)`` blocks,
      first one strided, at ``R/2``;
    * ``branches.2``: as many blocks ``C/alpha^2`` wide at ``R`` (widths fall geometrically
      between branches, as in bL-PYR's 256, 64, 16, 4);
    * ``expansions.1/2``: 1x1 conv + BN to ``C``; the merge up-samples and adds; ``fusion`` is the
      strided transition block (in ``layer3`` too, since its merge is one scale finer than
      K = 2's; ``layer4`` is plain).

    Measured: 4.84 GMACs, 27.33 M parameters. The parameters agree with Table 7 (+0.4 %), the
    MACs do not (+24 %): the text fixes neither the widths nor the depths nor the strides of the
    extra branch, and where this layout spends more than the paper's (every merge and transition
    block one scale finer than K = 2's) cannot be recovered from it. The row is built to measure,
    not to reproduce.
    """

    def __init__(self, alpha: int = 2, beta: int = 4, num_classes: int = 1000,
                 upsample: str = "nearest") -> None:
        super().__init__()
        depths = _stage_depths(50)
        stem = STAGE_WIDTHS[0]
        merge = MergeConfig.vision(mode="add", resample_mode=upsample)
        self.conv1, self.bn1 = _conv_bn(3, stem, 7, stride=2)
        self.relu = nn.ReLU(inplace=True)
        self.stem = MultiBranchModule(
            [
                _conv_bn_relu(stem, stem, 3, 2, relu=False),
                nn.Sequential(_conv_bn_relu(stem, stem // alpha, 3),
                              _conv_bn_relu(stem // alpha, stem // alpha, 3, 2),
                              _conv_bn_relu(stem // alpha, stem, 1, relu=False)),
                nn.Sequential(_conv_bn_relu(stem, stem // alpha ** 2, 3),
                              _conv_bn_relu(stem // alpha ** 2, stem, 1, relu=False)),
            ],
            config=merge,
            fusion=_conv_bn_relu(stem, stem, 1),
        )
        stages: List[nn.Module] = []
        in_channels = stem
        for index, blocks in enumerate(depths[:3]):
            out = STAGE_WIDTHS[index] * Bottleneck.expansion
            little_blocks = max(1, blocks // beta - 1)
            stages.append(MultiBranchModule(
                [
                    nn.Sequential(nn.AvgPool2d(3, 2, 1),
                                  make_stage(in_channels, out, blocks - 1, stride=2, last_relu=False)),
                    make_stage(in_channels, out // alpha, little_blocks, stride=2),
                    make_stage(in_channels, out // alpha ** 2, little_blocks, stride=1),
                ],
                [None, channel_matching(out // alpha, out), channel_matching(out // alpha ** 2, out)],
                config=merge,
                fusion=make_stage(out, out, 1, stride=2),
            ))
            in_channels = out
        self.layer1, self.layer2, self.layer3 = stages
        out = STAGE_WIDTHS[3] * Bottleneck.expansion
        self.layer4 = make_stage(in_channels, out, depths[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(out, num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> layer4 map ``(B, 2048, H/32, W/32)``."""
        x = self.stem(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def bl_resnet50_k3(num_classes: int = 1000, upsample: str = "nearest") -> BLNetThreeBranch:
    """bL-ResNet-50 with three branches (K = 3, scales 1/4, 1/2, 1; alpha=2, beta=4), Table 7
    (paper: 3.91 GMACs, 27.23 M; this layout: 4.84 / 27.33, see :class:`BLNetThreeBranch`)."""
    return BLNetThreeBranch(num_classes=num_classes, upsample=upsample)
