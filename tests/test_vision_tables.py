"""The rest of the paper's vision models (Appendix A, Tables 6-10): figures against the paper's,
a forward pass of every builder, and the structure each reading of the text commits to."""
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
import torchvision
from torch import nn

from asr_bl.bin import flops
from asr_bl.nn import MultiBranchModule, count_macs
from asr_bl.vision import DETECTORS, MODELS, bl_resnet50, bl_resnet101
from asr_bl.vision.ablations import BLNetMergeLayout, MergeLayoutConfig, SplitModule
from asr_bl.vision.detection import (
    TABLE10,
    count_detector_macs,
    fasterrcnn_bl_resnet101_fpn,
    fasterrcnn_resnet101_fpn,
)
from asr_bl.vision.shufflenet import ChannelSplit, ShuffleUnit
from asr_bl.vision.tables import PAPER_ROWS, PaperRow, measure

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Rows that the text leaves too open to reproduce; everything else must be within 2 %.
#: Their measured figures are pinned (a changed layout must change this list on purpose).
NOT_REPRODUCED: Dict[Tuple[str, Tuple[int, int]], Tuple[float, float]] = {
    ("bl_resnet50_k3", (224, 224)): (4.8438, 27.3304),
    ("bl_shufflenet_v2_x1_0", (256, 256)): (0.16118, 2.3379),
    ("bl_shufflenet_v2_x1_5", (256, 256)): (0.32357, 3.6371),
    ("bl_shufflenet_v2_x2_0", (256, 256)): (0.64279, 7.6475),
    ("bl_shufflenet_v2_x1_0", (224, 224)): (0.12364, 2.3379),
    ("bl_shufflenet_v2_x1_5", (224, 224)): (0.24797, 3.6371),
    ("bl_shufflenet_v2_x2_0", (224, 224)): (0.49262, 7.6475),
}
CLASSIFIER_ROWS: List[PaperRow] = [r for r in PAPER_ROWS if not r.is_detector]
NEW_BUILDERS = sorted({r.model for r in CLASSIFIER_ROWS})


def _row_id(row: PaperRow) -> str:
    return f"{row.model}@{row.input_size[0]}"


@pytest.mark.parametrize("row", CLASSIFIER_ROWS, ids=_row_id)
def test_figures_against_the_paper(row: PaperRow) -> None:
    result = measure(row)
    key = (row.model, row.input_size)
    if key in NOT_REPRODUCED:
        gmacs, params_m = NOT_REPRODUCED[key]
        assert result["gmacs"] == pytest.approx(gmacs, rel=1e-3)
        assert result["params_m"] == pytest.approx(params_m, rel=1e-3)
        assert abs(float(result["gmacs_dev_pct"])) > 2 or abs(float(result["params_dev_pct"])) > 2, (
            "now within 2 % of the paper: move it out of NOT_REPRODUCED")
    else:
        assert abs(float(result["gmacs_dev_pct"])) < 2, result
        assert abs(float(result["params_dev_pct"])) < 2, result


def test_parameters_agree_where_the_macs_do_not() -> None:
    """K = 3 and bL-ShuffleNetV2 1x / 2x: the parameter counts are the paper's (within 2 %)."""
    for model in ("bl_resnet50_k3", "bl_shufflenet_v2_x1_0", "bl_shufflenet_v2_x2_0"):
        row = next(r for r in PAPER_ROWS if r.model == model)
        assert abs(float(measure(row)["params_dev_pct"])) < 2, model


@pytest.mark.parametrize("name", NEW_BUILDERS)
def test_forward_pass_of_every_new_builder(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS[name](num_classes=10).eval()
    with torch.no_grad():
        for batch, size in ((2, 64), (1, 97)):  # odd sizes must merge too (Big up-sampled to fit)
            logits = model(torch.randn(batch, 3, size, size))
            assert logits.shape == (batch, 10) and torch.isfinite(logits).all()


def test_every_row_is_a_registered_builder() -> None:
    for row in PAPER_ROWS:
        assert row.model in (DETECTORS if row.is_detector else MODELS), row.model
    assert {r.table for r in PAPER_ROWS} == {"Table 6", "Table 7", "Table 8", "Table 9", "Table 10"}


def _output_sizes(model: nn.Module, names: List[str], size: int = 224) -> Dict[str, Tuple[int, ...]]:
    shapes: Dict[str, Tuple[int, ...]] = {}
    hooks = [getattr(model, n).register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:]))) for n in names]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return shapes


def test_lowres_resnet_works_at_the_big_branch_resolution() -> None:
    model = MODELS["resnet50_lowres"]()
    assert model.maxpool is None and model.b_conv0.stride == (2, 2)
    shapes = _output_sizes(model, ["layer1", "layer2", "layer3", "layer4"])
    assert shapes == {"layer1": (256, 28, 28), "layer2": (512, 14, 14), "layer3": (1024, 7, 7),
                      "layer4": (2048, 4, 4)}
    # The same blocks as ResNet-50 plus the stem's 3x3 conv: its parameters, a quarter-ish of its MACs.
    plain = MODELS["resnet50"]()
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters()) == \
        64 * 64 * 9 + 2 * 64


def test_concat_merge_has_no_expansion_and_splits_the_width() -> None:
    model = MODELS["bl_resnet50_concat"]()
    assert model.l_conv2 is None and model.b_conv0.out_channels == 32
    for stage, width in ((model.layer1, 256), (model.layer2, 512), (model.layer3, 1024)):
        assert stage.little_e is None and stage.config.mode == "concat"
        assert stage.big[-1].conv3.out_channels == width // 2
        assert stage.little[-1].conv3.out_channels == width // 2
        assert stage.fusion[0].conv1.in_channels == width
    logits = model.eval()(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 1000)


def test_merge_layout_reduces_to_the_official_bl_resnet() -> None:
    """m = 4 with one module per stage is bL-ResNet itself: the same MACs and parameters."""
    for depth, official in ((50, bl_resnet50), (101, bl_resnet101)):
        ours = count_macs(BLNetMergeLayout(MergeLayoutConfig(depth)).to("meta"),
                          torch.empty(1, 3, 224, 224, device="meta"))
        theirs = count_macs(official().to("meta"), torch.empty(1, 3, 224, 224, device="meta"))
        assert (ours.macs, ours.params) == (theirs.macs, theirs.params)


@pytest.mark.parametrize("name, merges, split_stages", [
    ("bl_resnet50_m2", 2, (1,)), ("bl_resnet50_m1", 1, (1, 2)), ("bl_resnet101_m7", 7, ())])
def test_number_of_merges(name: str, merges: int, split_stages: Tuple[int, ...]) -> None:
    model = MODELS[name]()
    assert model.config.num_merges == merges
    assert model.stem_merged == (merges >= 4)
    merged_modules = 0
    for stage in (1, 2, 3):
        modules = getattr(model, f"layer{stage}")
        unmerged = [isinstance(m, SplitModule) for m in modules]
        assert all(unmerged) == (stage in split_stages) and any(unmerged) == (stage in split_stages)
        merged_modules += sum(not u for u in unmerged)
        # A module that merges at the end of its stage gets no 'little_e' when it does not merge.
        for module in modules:
            assert hasattr(module, "little_e") != isinstance(module, SplitModule)
    assert int(model.stem_merged) + merged_modules == merges
    if name == "bl_resnet101_m7":
        assert [len(model.layer1), len(model.layer2), len(model.layer3)] == [1, 2, 3]


def test_three_branches_use_the_k_branch_core_module() -> None:
    model = MODELS["bl_resnet50_k3"]()
    for module in (model.stem, model.layer1, model.layer2, model.layer3):
        assert isinstance(module, MultiBranchModule) and module.num_branches == 3
    # Scales 1/4, 1/2, 1 in every stage: the branch outputs before the merge.
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        stem = model.eval().stem(model.relu(model.bn1(model.conv1(x))))
        sizes = [o.shape[-1] for o in model.layer1.branch_outputs(stem)]
    assert stem.shape[-1] == 112 and sizes == [28, 56, 112]


def test_bl_shufflenet_follows_torchvision_and_merges_twice() -> None:
    ours, theirs = MODELS["bl_shufflenet_v2_x1_0"](), torchvision.models.shufflenet_v2_x1_0(weights=None)
    assert ours.conv5[0].in_channels == theirs.conv5[0].in_channels == 464
    shapes = _output_sizes(ours, ["stage2", "stage3", "stage4"])
    reference = _output_sizes(theirs, ["stage2", "stage3", "stage4"])
    # The fusion of each bL stage is the next stage's strided entry unit: stage2 ends one stage on.
    assert shapes == {"stage2": (232, 14, 14), "stage3": (464, 7, 7), "stage4": (464, 7, 7)}
    assert reference["stage4"] == shapes["stage4"]
    # The Little-Branch splits its channels off (no weights) and runs max(1, N // 2 - 1) units.
    assert isinstance(ours.stage3.little[0], ChannelSplit) and len(ours.stage3.little) == 1 + 3
    assert isinstance(ours.stage3.big[0].branch1, nn.AvgPool2d)  # weight-free down-sampling


def test_shuffle_units_equal_torchvisions() -> None:
    """Where torchvision has the unit (basic, strided widening), ours computes the same function."""
    from torchvision.models.shufflenetv2 import InvertedResidual

    for args in ((116, 116, 1), (116, 232, 2), (24, 116, 2)):
        ours, theirs = ShuffleUnit(*args).eval(), InvertedResidual(*args).eval()
        ours.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.randn(2, args[0], 14, 14)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------- detection


def test_detectors_forward_and_count_at_a_small_size() -> None:
    """Both detectors detect on a random image; the bL backbone hands the FPN maps of ResNet's
    C2..C5 strides and widths; the count splits by part, the two share FPN, RPN and heads
    exactly, and the backbones differ by the classifiers' ratio (about 2x)."""
    torch.manual_seed(0)
    counts, levels = {}, {}
    for build in (fasterrcnn_resnet101_fpn, fasterrcnn_bl_resnet101_fpn):
        model = build(num_classes=5, min_size=128, max_size=160).eval()
        with torch.no_grad():
            pyramid = model.backbone(torch.randn(1, 3, 128, 160))
            levels[build.__name__] = [(k, tuple(v.shape)) for k, v in pyramid.items()]
            detections = model([torch.rand(3, 128, 160)])
        assert model.backbone.out_channels == 256
        assert [m[0].in_channels for m in model.backbone.fpn.inner_blocks] == [256, 512, 1024, 2048]
        assert set(detections[0]) == {"boxes", "labels", "scores"}
        assert detections[0]["boxes"].shape[1:] == (4,)
        macs = count_detector_macs(model, 128, 160, proposals=16)
        assert macs.proposals == 16 and macs.total == macs.backbone + macs.fpn + macs.rpn + macs.roi_heads
        assert (model.transform.min_size, model.transform.max_size) == ((128,), 160)  # restored
        assert model.rpn.post_nms_top_n() == 1000 and model.rpn.nms_thresh == 0.7
        counts[build.__name__] = macs
        last = model
    assert levels["fasterrcnn_resnet101_fpn"] == levels["fasterrcnn_bl_resnet101_fpn"]
    assert [k for k, _ in levels["fasterrcnn_bl_resnet101_fpn"]] == ["0", "1", "2", "3", "pool"]
    plain, bl = counts["fasterrcnn_resnet101_fpn"], counts["fasterrcnn_bl_resnet101_fpn"]
    assert (plain.fpn, plain.rpn, plain.roi_heads) == (bl.fpn, bl.rpn, bl.roi_heads)
    assert 1.8 < plain.backbone / bl.backbone < 2.2
    # The box head scales with the proposals: 16 more proposals, 16 x its per-box MACs more.
    more = count_detector_macs(last, 128, 160, proposals=32)
    per_box = 256 * 7 * 7 * 1024 + 1024 * 1024 + 1024 * 5 + 1024 * 5 * 4
    assert more.roi_heads - bl.roi_heads == 16 * per_box


def test_flops_cli_counts_a_detector(capsys) -> None:
    assert flops.main(["fasterrcnn_bl_resnet101_fpn", "--input-size", "128x160", "--proposals", "8",
                       "--num-classes", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["kind"] == "detector" and row["proposals"] == 8 and row["input_size"] == [3, 128, 160]
    parts = row["gmacs_by_part"]
    assert sum(parts.values()) == pytest.approx(row["gmacs"], abs=1e-5)
    assert row["gmacs_without_rpn"] == pytest.approx(row["gmacs"] - parts["rpn"], abs=1e-5)
    assert flops.main(["fasterrcnn_bl_resnet101_fpn", "--input-size", "32", "--proposals", "5000"]) == 1
    assert "proposals" in capsys.readouterr().err
    assert flops.main(["fasterrcnn_bl_resnet101_fpn", "--proposals", "0"]) == 2


def test_flops_cli_lists_a_table_row_beside_the_paper() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asr_bl.bin.flops", "bl_resnet101_m7", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["gmacs"] == pytest.approx(5.21, rel=0.02) and row["params_m"] == pytest.approx(44.44, rel=0.02)


@pytest.mark.slow
def test_vision_tables_cli_prints_every_row(capsys) -> None:
    assert flops.main(["vision-tables", "--skip-detection"]) == 0
    out = capsys.readouterr().out
    for row in CLASSIFIER_ROWS:
        assert row.model in out
    assert "fasterrcnn" not in out


@pytest.mark.slow
@pytest.mark.parametrize("size", sorted(TABLE10))
def test_table10_counts_and_ratio(size: Tuple[int, int]) -> None:
    """At the paper's sizes with 300 proposals: without the RPN head both totals are within 2 % of
    Table 10 and so is their ratio (1.54x / 1.55x); with it the ratio is lower (about 1.41x)."""
    paper_plain, paper_bl = TABLE10[size]
    torch.manual_seed(0)
    plain = count_detector_macs(fasterrcnn_resnet101_fpn(), *size, proposals=300)
    bl = count_detector_macs(fasterrcnn_bl_resnet101_fpn(), *size, proposals=300)
    assert plain.without_rpn / 1e9 == pytest.approx(paper_plain, rel=0.02)
    assert bl.without_rpn / 1e9 == pytest.approx(paper_bl, rel=0.02)
    assert plain.without_rpn / bl.without_rpn == pytest.approx(paper_plain / paper_bl, rel=0.02)
    assert 1.35 < plain.total / bl.total < 1.45
    assert plain.backbone / bl.backbone == pytest.approx(2.0, rel=0.02)
