"""asr_bl.vision models against the official bL-Net reference, torchvision and the paper's tables."""
import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
import torchvision
from torch import nn

from asr_bl.nn import count_macs
from asr_bl.vision import (
    MODELS,
    Bottleneck,
    CheckpointMismatchError,
    bl_resnet50,
    load_official,
    save_official,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_JSON = Path(__file__).resolve().parent / "data" / "official_bl_vision_models.json"

#: Paper, Tables 1 and 2 (GMACs at 224, params in millions), alpha=2 beta=4 unless named.
PAPER_TABLES: Dict[str, Tuple[float, float]] = {
    "bl_resnet50_a2_b2": (2.91, 26.97),
    "bl_resnet50_a2_b4": (2.85, 26.69),
    "bl_resnet50_a4_b2": (2.49, 26.31),
    "bl_resnet50_a4_b4": (2.48, 26.24),
    "bl_resnet101_a2_b4": (3.89, 41.85),
    "bl_resnet152_a2_b4": (5.04, 57.36),
    "bl_resnext50_32x4d_a2_b4": (3.03, 26.19),
    "bl_resnext101_32x4d_a2_b4": (4.08, 41.51),
    "bl_resnext101_64x4d_a2_b4": (7.14, 77.36),
    "bl_seresnext50_32x4d_a2_b4": (3.03, 28.77),
    "bl_seresnext101_32x4d_a2_b4": (4.08, 45.88),
}


def _load_reference() -> Dict[str, dict]:
    if not REFERENCE_JSON.is_file():
        pytest.fail(
            f"reference file {REFERENCE_JSON} is missing: it is vendored in the repository "
            "(tests/data/official_bl_vision_models.json); restore it from git"
        )
    with open(REFERENCE_JSON) as f:
        return json.load(f)



def test_reference_file_present_and_complete() -> None:
    reference = _load_reference()
    assert sorted(reference) == sorted(PAPER_TABLES), "reference JSON holds other configurations"


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random values in every parameter and BN statistic, so no zero-initialised BN hides a path."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = torch.randn(tensor.shape, generator=generator) * 0.1
                if name.endswith("running_var"):
                    values = values.abs() + 0.5
                elif name.endswith("bn3.weight") or ".downsample." in name:
                    values = values + 0.3
                tensor.copy_(values)
    return model.eval()


@pytest.mark.parametrize("name", sorted(PAPER_TABLES))
def test_state_dict_macs_params_match_reference(name: str) -> None:
    reference = _load_reference()[name]
    model = MODELS[name]()
    ours: List[list] = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    theirs = [[k, list(shape)] for k, shape in reference["state_dict"]]
    assert [k for k, _ in ours] == [k for k, _ in theirs], "state_dict keys (or order) differ"
    assert ours == theirs, "state_dict shapes differ"
    # MACs on the meta device: shapes only, no arithmetic.
    model = model.to("meta")
    for size in (224, 256):
        count = count_macs(model, torch.empty(1, 3, size, size, device="meta"))
        expected = reference[f"conv_fc_gmacs_{size}"]
        assert count.gmacs == pytest.approx(expected, rel=0.01), f"GMACs at {size}"
        if size == 224:
            paper_gmacs, paper_params = PAPER_TABLES[name]
            assert count.gmacs == pytest.approx(paper_gmacs, rel=0.01)
            assert count.params_m == pytest.approx(paper_params, rel=0.01)
            assert count.params_m == pytest.approx(reference["params_m"], rel=0.01)
    # The official code has no MAC-relevant freedom left: we agree to the last printed digit.
    assert count.gmacs == pytest.approx(reference["conv_fc_gmacs_256"], abs=1e-4)


def test_registry_names_and_defaults() -> None:
    for name in list(PAPER_TABLES) + [
        "bl_resnet50", "bl_resnet101", "bl_resnet152", "bl_resnext50_32x4d",
        "bl_resnext101_32x4d", "bl_resnext101_64x4d", "bl_seresnext50_32x4d",
        "bl_seresnext101_32x4d", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
        "resnext101_32x4d", "resnext101_64x4d", "seresnext50_32x4d", "seresnext101_32x4d",
    ]:
        assert name in MODELS, name
    model = MODELS["bl_resnet50"]()
    assert (model.config.alpha, model.config.beta, model.config.upsample) == (2, 4, "nearest")


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
def test_plain_baselines_are_torchvision_compatible(name: str) -> None:
    ours = MODELS[name](num_classes=10)
    theirs = getattr(torchvision.models, name)(num_classes=10)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    _randomize(theirs, seed=1)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_baseline_sizes_match_paper_table2() -> None:
    # Table 2 baselines (params in millions): the SE variant adds SE to torchvision's ResNeXt.
    expected = {"resnet50": 25.56, "resnet101": 44.55, "seresnext50_32x4d": 27.56,
                "resnext101_32x4d": 44.18}
    for name, params_m in expected.items():
        count = sum(p.numel() for p in MODELS[name]().parameters()) / 1e6
        assert count == pytest.approx(params_m, rel=0.005), name
    macs = count_macs(MODELS["resnet50"]().to("meta"), torch.empty(1, 3, 224, 224, device="meta"))
    assert macs.gmacs == pytest.approx(4.09, rel=0.01)


def test_official_layout_round_trip(tmp_path: Path) -> None:
    source = _randomize(bl_resnet50(num_classes=100), seed=1)
    path = tmp_path / "bl_resnet50_a2_b4.pth.tar"
    save_official(source, path, epoch=110, arch="bl_resnet50")
    raw = torch.load(path)
    assert set(raw) == {"state_dict", "epoch", "arch"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    assert "module.layer1.little_e.0.weight" in raw["state_dict"]

    target = _randomize(bl_resnet50(num_classes=100), seed=2)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = source(x)
        assert not torch.allclose(target(x), expected)
        extras = load_official(target, path)
        torch.testing.assert_close(target(x), expected, rtol=0, atol=0)
    assert extras == {"epoch": 110, "arch": "bl_resnet50"}
    assert not list(tmp_path.glob("*.tmp")), "save left its temporary file behind"


def test_load_official_accepts_unprefixed_and_bare_state_dicts(tmp_path: Path) -> None:
    source = _randomize(bl_resnet50(alpha=4, beta=4, num_classes=7), seed=3)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = source(x)
    for payload in ({"state_dict": source.state_dict()}, source.state_dict()):
        path = tmp_path / "checkpoint.pth"
        torch.save(payload, path)
        target = bl_resnet50(alpha=4, beta=4, num_classes=7).eval()
        load_official(target, path)
        with torch.no_grad():
            torch.testing.assert_close(target(x), expected, rtol=0, atol=0)


def test_load_official_names_mismatches(tmp_path: Path) -> None:
    path = tmp_path / "a2b4.pth.tar"
    save_official(bl_resnet50(num_classes=10), path)
    with pytest.raises(CheckpointMismatchError, match=r"l_conv0\.weight \(checkpoint \(32, 64, 3, 3\)"):
        load_official(bl_resnet50(alpha=4, num_classes=10), path)
    # beta=2 has a deeper Little-Branch: its extra blocks are missing from a beta=4 file.
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: layer3\.little\.1\."):
        load_official(bl_resnet50(beta=2, num_classes=10), path)
    checkpoint = torch.load(path)
    checkpoint["state_dict"]["module.extra.weight"] = torch.zeros(1)
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointMismatchError, match=r"1 unexpected keys: extra\.weight"):
        load_official(bl_resnet50(num_classes=10), path)
    with pytest.raises(FileNotFoundError, match="nowhere.pth.tar"):
        load_official(bl_resnet50(num_classes=10), tmp_path / "nowhere.pth.tar")


def test_structure_follows_the_official_code() -> None:
    model = bl_resnet50()
    for module in model.modules():
        if isinstance(module, Bottleneck):
            assert torch.count_nonzero(module.bn3.weight) == 0, "last BN of a bottleneck is zero-init"
    for stage in (model.layer1, model.layer2, model.layer3):
        # The Big-Branch ends without ReLU (the merge applies one); the Little-Branch keeps it.
        assert [b.last_relu for b in stage.big] == [True] * (len(stage.big) - 1) + [False]
        assert all(b.last_relu for b in stage.little)
        assert isinstance(stage.big[0].downsample[0], nn.AvgPool2d)
    # Fusion is strided in layer1/2 only; its shortcut is then a bare AvgPool (no parameters).
    assert model.layer1.fusion[0].conv2.stride == (2, 2)
    assert isinstance(model.layer2.fusion[0].downsample[0], nn.AvgPool2d)
    assert model.layer3.fusion[0].conv2.stride == (1, 1) and model.layer3.fusion[0].downsample is None
    shapes = {}
    hooks = [getattr(model, n).register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])))
        for n in ("bl_init", "layer1", "layer2", "layer3", "layer4")]
    with torch.no_grad():
        logits = model.eval()(torch.randn(1, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    assert logits.shape == (1, 1000)
    assert shapes == {"bl_init": (64, 56, 56), "layer1": (256, 28, 28), "layer2": (512, 14, 14),
                      "layer3": (1024, 14, 14), "layer4": (2048, 7, 7)}


def test_bilinear_variant_same_weights_different_function() -> None:
    nearest = _randomize(bl_resnet50(num_classes=10), seed=4)
    bilinear = bl_resnet50(num_classes=10, upsample="bilinear").eval()
    bilinear.load_state_dict(nearest.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(nearest(x), bilinear(x), atol=1e-4)
    # Odd sizes: the Big map is up-sampled to the Little map's exact size, not by 2.
    for size in (100, 97):
        with torch.no_grad():
            assert bilinear(torch.randn(1, 3, size, size)).shape == (1, 10)
    with pytest.raises(ValueError, match="upsample"):
        bl_resnet50(upsample="bicubic")


def test_flops_cli_finds_vision_models() -> None:
    import subprocess
    import sys

    reference = _load_reference()["bl_seresnext50_32x4d_a2_b4"]
    result = subprocess.run(
        [sys.executable, "-m", "asr_bl.bin.flops", "bl_seresnext50_32x4d_a2_b4", "--input-size",
         "256", "--json"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "vision"
    assert report["gmacs"] == pytest.approx(reference["conv_fc_gmacs_256"], rel=1e-3)
    assert report["params_m"] == pytest.approx(reference["params_m"], rel=1e-3)


def test_load_official_is_safe_but_reads_float_metadata(tmp_path: Path) -> None:
    import argparse

    model = _randomize(bl_resnet50(num_classes=3), seed=5)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    # Floats as the official training script stores them (torch 1.13's weights_only rejects
    # them), in both the zip and the legacy (pre-1.6) file formats.
    for zip_format in (True, False):
        path = tmp_path / f"floats_{zip_format}.pth.tar"
        torch.save({"state_dict": state, "best_top1": 77.52, "epoch": 110,
                    "optimizer": {"param_groups": [{"lr": 0.1, "nesterov": True}]}}, path,
                   _use_new_zipfile_serialization=zip_format)
        target = bl_resnet50(num_classes=3)
        extras = load_official(target, path)
        assert extras == {"best_top1": 77.52, "epoch": 110}
        assert torch.equal(target.fc.weight, model.fc.weight)
        # Any other object could run code when unpickled: refused unless trusted.
        evil = tmp_path / f"namespace_{zip_format}.pth.tar"
        torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, evil,
                   _use_new_zipfile_serialization=zip_format)
        with pytest.raises(RuntimeError, match=r"argparse Namespace.*trust_pickle=True"):
            load_official(bl_resnet50(num_classes=3), evil)
        assert load_official(bl_resnet50(num_classes=3), evil, trust_pickle=True)["args"].lr == 0.1
