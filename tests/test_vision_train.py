"""asr_bl-imagenet end to end on a tiny ImageFolder: 2-process torchrun/gloo, resume, evaluation."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

from asr_bl.vision import bl_resnet50, load_official
from asr_bl.vision.train import TrainConfig, accuracy_counts, cosine_lr, main, train

REPO_ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--arch", "bl_resnet50", "--num-classes", "2", "--batch-size", "2", "--workers", "0",
        "--crop-size", "64", "--eval-sizes", "64,72"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """train/: 4 reddish + 4 bluish noisy 72x80 images; val/: 3 + 2 (an uneven split over 2 ranks)."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for split, counts in (("train", (4, 4)), ("val", (3, 2))):
        for label, (color, count) in enumerate(zip(((200, 40, 40), (40, 40, 200)), counts)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                noise = rng.normal(0, 30, (72, 80, 3))
                pixels = np.clip(np.array(color)[None, None] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def _metrics(out_dir: Path) -> List[Dict]:
    with open(out_dir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "asr_bl.vision.train", *args]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_cosine_lr_schedule() -> None:
    assert cosine_lr(0, 100, 0.4) == pytest.approx(0.4)
    assert cosine_lr(50, 100, 0.4) == pytest.approx(0.2)
    assert cosine_lr(100, 100, 0.4) == pytest.approx(0.0)
    assert cosine_lr(25, 100, 0.4) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert cosine_lr(0, 100, 0.4, warmup_steps=4) == pytest.approx(0.1)
    assert cosine_lr(4, 100, 0.4, warmup_steps=4) == pytest.approx(0.4)


def test_accuracy_counts() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5]])
    assert accuracy_counts(logits, torch.tensor([1, 1, 0]), ks=(1, 2)) == [1, 2]
    # k larger than the number of classes counts every example.
    assert accuracy_counts(logits, torch.tensor([2, 2, 2]), ks=(1, 5)) == [1, 3]


def test_resume_reproduces_uninterrupted_run(image_folder: Path, tmp_path: Path) -> None:
    common = dict(data=str(image_folder), arch="bl_resnet50", num_classes=2, batch_size=4,
                  workers=0, crop_size=64, eval_sizes=(64,), lr=0.5)  # batch 4: 2 steps/epoch
    train(TrainConfig(out_dir=str(tmp_path / "straight"), epochs=2, **common))
    # Interrupted after epoch 1 (the cosine schedule still spans 2 epochs), then continued.
    train(TrainConfig(out_dir=str(tmp_path / "resumed"), epochs=2, stop_after_epoch=1, **common))
    first = torch.load(tmp_path / "resumed" / "checkpoint.pth.tar")
    assert first["epoch"] == 1 and first["step"] == 2
    train(TrainConfig(out_dir=str(tmp_path / "resumed"), epochs=2, **common))

    straight = torch.load(tmp_path / "straight" / "checkpoint.pth.tar")
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pth.tar")
    assert straight["epoch"] == resumed["epoch"] == 2 and resumed["step"] == 4
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
    assert not torch.equal(first["state_dict"]["module.fc.weight"], resumed["state_dict"]["module.fc.weight"])
    assert [m["epoch"] for m in _metrics(tmp_path / "resumed")] == [1, 2]
    assert _metrics(tmp_path / "resumed")[1] == {**_metrics(tmp_path / "straight")[1],
                                                 "seconds": _metrics(tmp_path / "resumed")[1]["seconds"]}


def test_resume_with_another_batch_size_finishes_the_schedule(image_folder: Path, tmp_path: Path,
                                                              caplog) -> None:
    common = dict(data=str(image_folder), out_dir=str(tmp_path), arch="bl_resnet50", num_classes=2,
                  workers=0, crop_size=64, eval_sizes=(64,), lr=0.5, epochs=2)
    train(TrainConfig(batch_size=4, stop_after_epoch=1, **common))  # 2 steps/epoch
    assert torch.load(tmp_path / "checkpoint.pth.tar")["step"] == 2
    with caplog.at_level("WARNING", logger="asr_bl.vision.train"):
        train(TrainConfig(batch_size=2, **common))  # 4 steps/epoch: epoch 2 is steps 4..7 of 8
    assert "processes x batch 4, resuming with 1 x 2" in caplog.text
    state = torch.load(tmp_path / "checkpoint.pth.tar")
    assert state["epoch"] == 2 and state["step"] == 2 * 4 and state["world_size"] == 1
    # The last step ran at the end of the cosine, not part-way down it.
    last_lr = state["optimizer"]["param_groups"][0]["lr"]
    base_lr = 0.5 * 2 / 256
    assert last_lr == pytest.approx(cosine_lr(7, 8, base_lr))
    assert last_lr < 0.05 * base_lr


def test_torchrun_gloo_two_processes_train_resume_evaluate(image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ddp"
    first = _torchrun("--data", str(image_folder), "--out-dir", str(out), "--epochs", "2",
                      "--stop-after-epoch", "1", *ARGS)
    (record,) = _metrics(out)
    # 2 processes x 2 steps x batch 2: every training image once; every val image exactly once.
    assert record["train"]["count"] == 8 and record["step"] == 2
    assert record["val@64"]["count"] == 5 and record["val@72"]["count"] == 5
    assert "2 processes x batch 2" in first.stderr
    checkpoint = torch.load(out / "checkpoint.pth.tar")
    assert checkpoint["epoch"] == 1 and checkpoint["arch"] == "bl_resnet50"

    second = _torchrun("--data", str(image_folder), "--out-dir", str(out), "--epochs", "2", *ARGS)
    assert "resuming from" in second.stderr and "at epoch 1 (step 2)" in second.stderr
    records = _metrics(out)
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["step"] == 4

    # model_best is in the official layout; one process evaluating it must reproduce the
    # distributed evaluation of the same epoch (exact sharding, rank 0's BN statistics).
    best = torch.load(out / "model_best.pth.tar")
    assert all(k.startswith("module.") for k in best["state_dict"])
    best_record = records[best["epoch"] - 1]
    model = bl_resnet50(num_classes=2)
    load_official(model, out / "model_best.pth.tar")
    capsys.readouterr()
    main(["--data", str(image_folder), "--evaluate", "--weights", str(out / "model_best.pth.tar"),
          "--out-dir", str(tmp_path / "eval"), *ARGS])
    single = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for size in ("val@64", "val@72"):
        assert single[size]["count"] == 5
        assert single[size]["top1"] == best_record[size]["top1"]
        assert single[size]["loss"] == pytest.approx(best_record[size]["loss"], rel=1e-4)


def test_cli_errors_name_the_problem(image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="3 classes|has 2 classes"):
        main(["--data", str(image_folder), "--out-dir", str(tmp_path / "a"), "--epochs", "1",
              *ARGS[:2], "--num-classes", "3", *ARGS[4:]])
    with pytest.raises(SystemExit, match=r"nowhere/val is not a directory"):
        main(["--data", str(tmp_path / "nowhere"), "--out-dir", str(tmp_path / "b"), *ARGS])
    # A checkpoint of another model in --out-dir is not silently resumed or overwritten.
    (tmp_path / "c").mkdir()
    torch.save({"arch": "bl_resnet50", "num_classes": 2}, tmp_path / "c" / "checkpoint.pth.tar")
    with pytest.raises(SystemExit, match="checkpoint.pth.tar is for --arch bl_resnet50.*--restart"):
        main(["--data", str(image_folder), "--out-dir", str(tmp_path / "c"), "--epochs", "2",
              "--arch", "bl_resnext50_32x4d", *ARGS[2:]])


@pytest.mark.slow
def test_tiny_training_learns_the_task(image_folder: Path, tmp_path: Path) -> None:
    # Reddish vs bluish images survive the recipe's crops, flips and colour jitter (no hue change):
    # 8 epochs of 2 steps must separate them on the held-out images.
    results = train(TrainConfig(data=str(image_folder), out_dir=str(tmp_path), arch="bl_resnet50",
                                num_classes=2, batch_size=4, workers=0, crop_size=64,
                                eval_sizes=(64,), epochs=8, lr=1.6))
    assert results["val@64"]["top1"] == 100.0
    assert results["val@64"]["loss"] < 0.1
    first = _metrics(tmp_path)[0]
    assert first["val@64"]["loss"] > results["val@64"]["loss"]
