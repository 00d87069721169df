"""The merge ablations of bL-ResNet (Chen et al., ICLR 2019, Appendix A.4, Table 8): fewer merges
(m = 2, 1) for bL-ResNet-50 and more (m = 7) for bL-ResNet-101, on the shared bL core.

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

Modules are named ``stem_*`` (as :class:`~asr_bl.vision.models.BLNet`), ``layer1..3`` (each an
``nn.ModuleList`` of bL-modules; for an unmerged module the children ``big``, ``little`` and
``fusion`` are kept in a :class:`SplitModule`), ``layer4`` and ``fc``.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from asr_bl.nn import BigLittleModule, MergeConfig, channel_matching, merge_branches
from asr_bl.vision.blocks import Bottleneck, make_stage
from asr_bl.vision.models import SE_REDUCTION, STAGE_WIDTHS, _conv_bn, _init_weights, _stage_depths

__all__ = ["MergeLayoutConfig", "SplitModule", "BLNetMergeLayout", "bl_resnet50_m2", "bl_resnet50_m1",
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

        merged_input = self.stem_merged
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
                little_strided, merged_input = False, True
            else:
                modules.append(SplitModule(
                    big=self._stage(big_in, out, depths[index] - 1, 2, last_relu=False),
                    little=self._stage(little_in, little_out, max(1, depths[index] // cfg.beta - 1),
                                       2 if little_strided else 1),
                    fusion=self._stage(out, out, 1, 1),
                ))
                big_in, little_in = out, little_out
                little_strided, merged_input = True, False
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
