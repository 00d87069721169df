"""The seven named acoustic models of the paper's Table 3, and :func:`build_model`.

Reading of Table 11 / Appendix B (also in the project's DESIGN.md):

* ``resnet22``: stem; stages of two-conv residual blocks (64)x3, (128, s2)x3, (256, s2)x3,
  (512, s2)x2; (4x1, 512); (1x1, N).
* ``bl-resnet22-a{α}-b{β}``: stages 1-3 are bL-modules at the stage's resolution followed by a
  transition layer (one 3x3 conv, stride 2, same width). Big-Branch: stage width, blocks
  [2, 2, 1], first conv stride 2 in frequency (bilinear up-sampling x2 in the merge).
  Little-Branch: width/α at full resolution, ceil(5/β) convs ([2,2,1], [2,1], [2]), 1x1 conv + BN
  to the stage width. Stage 4 (512 at 4 bins): Big [2, 2] (stride 2) and Little [2, 2] (β=1) or
  [2] (β=2, 3); for (α=2, β=3) stage 4 is the unbranched ResNet-22 stage (two blocks of 512).
* ``bl-resnet22-a4-b1-cat``: as (4, 1) but merging by concatenation (Big upsampled + Little
  without expansion) and a 1x1 conv + BN to the stage width.
* ``bl-pyr-resnet22-a4-b1``: stage 1 has four branches (256, 64, 16, 4 channels at 1/8, 1/4,
  1/2, 1 of the stage's frequency resolution), stage 2 three, stage 3 two (as α=4, β=1), stage 4
  the unbranched ResNet-22 stage. See :data:`PYRAMID_NOTES` for what the paper leaves open.
"""
import math
from dataclasses import replace
from typing import Callable, Dict, List, Tuple

from asr_bl.models.speech_resnet import BranchSpec, SpeechResNet, SpeechResNetConfig, StageSpec

STAGE_WIDTHS = (64, 128, 256, 512)

#: Convolution blocks of a Little-Branch of depth ceil(5/β) in stages 1-3 (Appendix B).
_LITTLE_BLOCKS_5 = {1: (2, 2, 1), 2: (2, 1), 3: (2,)}
#: ... and in stage 4, where the Big-Branch has 4 convs: 4/β rounded up to whole two-conv blocks.
_LITTLE_BLOCKS_4 = {1: (2, 2), 2: (2,), 3: (2,)}

#: How :func:`bl_pyr_resnet22_config` fills in what Appendix B leaves open for bL-PYR. With these
#: choices the model counts 0.959 GMACs / 33.16M params against Table 3's 0.98 / 33.2.
PYRAMID_NOTES = (
    "Every branch of stages 1-3 has blocks [2, 2, 1] (β=1). Branch j of K (j=0 the Big-Branch) "
    "reaches 1/2**(K-1-j) of the stage's frequency resolution by the stride of its first conv "
    "(8, 4, 2, 1 in stage 1; 4, 2, 1 in stage 2; 2, 1 in stage 3) and has width big/4**j, where big "
    "is 256 in stage 1 (widened, as the paper says) and the stage width (128, 256) otherwise. Every "
    "branch whose width differs from the stage width gets a 1x1 conv + BN to it (the stage-1 "
    "Big-Branch 256 -> 64, the 16- and 4-channel branches -> 64), applied at the branch's own "
    "resolution before the bilinear up-sampling to the finest branch. (In eval mode 1x1 conv + BN "
    "and up-sampling commute; expanding after up-sampling would cost 0.976 GMACs instead.)"
)


def resnet22_config() -> SpeechResNetConfig:
    """ResNet-22 (Appendix B)."""
    stages = tuple(
        StageSpec(width=w, branches=(BranchSpec(w, blocks, 1 if i == 0 else 2),))
        for i, (w, blocks) in enumerate(zip(STAGE_WIDTHS, ((2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2))))
    )
    return SpeechResNetConfig(stages=stages, description="ResNet-22")


def _plain_stage4() -> StageSpec:
    # ResNet-22's last stage without its stride: the preceding transition layer already halved frequency.
    return StageSpec(width=512, branches=(BranchSpec(512, (2, 2), 1),))


def bl_resnet22_config(alpha: int, beta: int, merge: str = "add") -> SpeechResNetConfig:
    """bL-ResNet-22 (α, β), Table 11; ``merge="concat"`` for the ``cat`` variant."""
    if beta not in _LITTLE_BLOCKS_5:
        raise ValueError(f"β must be 1, 2 or 3 (the Big-Branch has 5 convs), got {beta}")
    stages: List[StageSpec] = []
    for width in STAGE_WIDTHS[:3]:
        big = BranchSpec(width, (2, 2, 1), freq_stride=2)
        little = BranchSpec(width // alpha, _LITTLE_BLOCKS_5[beta])
        stages.append(StageSpec(width=width, branches=(big, little), transition=True))
    if (alpha, beta) == (2, 3):
        stages.append(_plain_stage4())
    else:
        big = BranchSpec(512, (2, 2), freq_stride=2)
        little = BranchSpec(512 // alpha, _LITTLE_BLOCKS_4[beta])
        stages.append(StageSpec(width=512, branches=(big, little)))
    cat = " cat" if merge == "concat" else ""
    return SpeechResNetConfig(stages=tuple(stages), merge=merge, description=f"bL-ResNet-22 (α={alpha}, β={beta}){cat}")


def bl_pyr_resnet22_config(alpha: int = 4) -> SpeechResNetConfig:
    """bL-PYR-ResNet-22 (α=4, β=1): 4, 3 and 2 branches in stages 1-3, plain stage 4."""
    stages: List[StageSpec] = []
    for stage_index, num_branches in enumerate((4, 3, 2)):
        width = STAGE_WIDTHS[stage_index]
        # Branch j (0 = coarsest) works at 1/2**(K-1-j) of the stage's frequency resolution.
        # Stage 1's Big-Branch is widened to 256 so the finest branch keeps 4 channels (Appendix B).
        big_width = 256 if stage_index == 0 else width
        branches = tuple(
            BranchSpec(max(1, big_width // alpha**j), (2, 2, 1), freq_stride=2 ** (num_branches - 1 - j))
            for j in range(num_branches)
        )
        stages.append(StageSpec(width=width, branches=branches, transition=True))
    stages.append(_plain_stage4())
    return SpeechResNetConfig(stages=tuple(stages), description="bL-PYR-ResNet-22 (α=4, β=1)")


PRESETS: Dict[str, Callable[[], SpeechResNetConfig]] = {
    "resnet22": resnet22_config,
    "bl-resnet22-a4-b1": lambda: bl_resnet22_config(4, 1),
    "bl-resnet22-a4-b2": lambda: bl_resnet22_config(4, 2),
    "bl-resnet22-a4-b3": lambda: bl_resnet22_config(4, 3),
    "bl-resnet22-a2-b3": lambda: bl_resnet22_config(2, 3),
    "bl-resnet22-a4-b1-cat": lambda: bl_resnet22_config(4, 1, merge="concat"),
    "bl-pyr-resnet22-a4-b1": bl_pyr_resnet22_config,
}

#: Table 3 of the paper as transcribed in DESIGN.md: (GMACs per 49-frame window, params in millions,
#: the latter including the 512 x 32000 output layer).
TABLE3_TARGETS: Dict[str, Tuple[float, float]] = {
    "resnet22": (1.11, 30.2),
    "bl-resnet22-a4-b1": (0.68, 31.5),
    "bl-resnet22-a4-b2": (0.66, 31.1),
    "bl-resnet22-a4-b3": (0.65, 31.0),
    "bl-resnet22-a2-b3": (0.77, 30.7),
    "bl-resnet22-a4-b1-cat": (0.70, 31.8),
    "bl-pyr-resnet22-a4-b1": (0.98, 33.2),
}


def model_names() -> List[str]:
    """The preset names, in Table 3 order."""
    return list(PRESETS)


def model_config(name: str, num_classes: int = 32000, width: float = 1.0) -> SpeechResNetConfig:
    """The architecture of preset ``name`` with ``num_classes`` outputs and channels scaled by ``width``."""
    if name not in PRESETS:
        raise KeyError(f"unknown acoustic model {name!r}; choose one of: {', '.join(PRESETS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    config = PRESETS[name]()
    if not math.isclose(width, 1.0):
        config = config.scaled(width)
    return replace(config, num_classes=num_classes)


def build_model(name: str, num_classes: int = 32000, width: float = 1.0) -> SpeechResNet:
    """Build acoustic model ``name`` (see :data:`PRESETS`).

    Input ``(B, 3, 64, T)`` with ``T >= 49``; output logits ``(B, T - 48, num_classes)``.
    ``width`` scales every channel count (e.g. 0.25 for small-data configurations).
    """
    return SpeechResNet(model_config(name, num_classes=num_classes, width=width))
