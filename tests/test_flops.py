"""asr_bl-flops: counts from the models themselves, within 3% of the paper's Table 3."""
import json

import pytest
import torchvision

import asr_bl.vision
from asr_bl.bin import flops
from asr_bl.models import TABLE3_TARGETS


def test_every_speech_preset_within_3_percent_of_table3(capsys):
    assert flops.main(["all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == list(TABLE3_TARGETS)
    for row in rows:
        gmacs, params = TABLE3_TARGETS[row["model"]]
        assert abs(row["gmacs"] / gmacs - 1) < 0.03, row
        assert abs(row["params_m"] / params - 1) < 0.03, row
    by_name = {r["model"]: r for r in rows}
    # The paper's headline: bL-ResNet-22 (4, 1) saves ~40% of ResNet-22's MACs.
    assert 0.55 < by_name["bl-resnet22-a4-b1"]["gmacs"] / by_name["resnet22"]["gmacs"] < 0.65


def test_json_output_of_one_model_and_options(capsys):
    assert flops.main(["resnet22", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["model"] == "resnet22" and row["input_size"] == [3, 64, 49]
    # ResNet-22's parameters by hand: conv weights (stem 4,800; stages 221,184 + 819,200 + 3,276,800
    # + 8,388,608 incl. the 1x1 shortcuts; (4x1, 512) 1,048,576; output 16,384,000) = 30,143,168,
    # + 32,000 output biases + 2 x 6,208 BN weights/biases = 30,187,584.
    assert row["params"] == 30_187_584
    assert flops.main(["resnet22", "--json", "--num-classes", "1000"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert row["params"] - small["params"] == 512 * 31000 + 31000
    assert row["macs"] - small["macs"] == 512 * 31000
    assert flops.main(["resnet22", "--json", "--num-classes", "1000", "--width", "0.5"]) == 0
    half = json.loads(capsys.readouterr().out)
    assert 0.2 < half["macs"] / small["macs"] < 0.3


def test_longer_input_counts_more_frames(capsys):
    assert flops.main(["resnet22", "--json", "--num-classes", "10", "--input-size", "64x59"]) == 0
    longer = json.loads(capsys.readouterr().out)
    assert flops.main(["resnet22", "--json", "--num-classes", "10"]) == 0
    one = json.loads(capsys.readouterr().out)
    # 11 outputs for less than twice the cost of one: the dense evaluation shares the overlapping windows.
    assert one["macs"] < longer["macs"] < 2 * one["macs"]


def test_unknown_model_and_bad_options_fail_clearly(capsys):
    assert flops.main(["resnet99"]) == 2
    assert "unknown model 'resnet99'" in capsys.readouterr().err
    assert flops.main(["resnet22", "--width", "0"]) == 2
    with pytest.raises(SystemExit):
        flops.main(["resnet22", "--input-size", "abc"])


def test_vision_names_are_looked_up_in_asr_bl_vision_models(monkeypatch, capsys):
    """A name missing from the speech presets is built from asr_bl.vision.MODELS (here torchvision's
    ResNet-18: 1.814 GMACs and 11.69M parameters at 224x224, the published figures)."""
    monkeypatch.setattr(asr_bl.vision, "MODELS", {"tv_resnet18": torchvision.models.resnet18}, raising=False)
    assert flops.main(["tv_resnet18", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["kind"] == "vision" and row["input_size"] == [3, 224, 224]
    assert abs(row["gmacs"] - 1.814) < 0.002 and abs(row["params_m"] - 11.690) < 0.001
    assert flops.main(["tv_resnet18", "--json", "--input-size", "112", "--num-classes", "10"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert small["input_size"] == [3, 112, 112] and small["params_m"] < 11.2
    assert flops.main(["tv_resnet18", "--width", "0.5"]) == 2


def test_breakdown_sums_to_total_and_shows_both_branches(capsys):
    assert flops.main(["bl-resnet22-a4-b1", "--json", "--breakdown", "3"]) == 0
    row = json.loads(capsys.readouterr().out)
    parts = row["gmacs_by_module"]
    assert abs(sum(parts.values()) - row["gmacs"]) < 1e-5
    # The Little-Branch of stage 1 costs a fraction of the Big-Branch (α=4, at twice the resolution).
    assert 0.1 < parts["body.layer1.little"] / parts["body.layer1.big"] < 0.4
    assert abs(parts["classifier"] - 512 * 32000 / 1e9) < 1e-6
