"""asr_bl-train on tiny real data: resume after SIGKILL, DDP == accumulation, divergence, bad input.

The data are real: WAV files -> lhotse cuts -> precomputed lilcom log-mel + CMVN (asr_bl.features)
-> per-frame pdf labels attached as lhotse TemporalArrays (asr_bl.data.attach_alignment), laid out
as the GMM stage's alignment dir (cuts, pdf_counts, num_pdfs, tree). The labels are a function of
the frame's energy band, so they are learnable. The tree file is opaque to the trainer (it is
copied and fingerprinted, never parsed), so a few bytes stand in for a GMM-built one.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asr_bl.data import attach_alignment
from asr_bl.features import CmvnStats, FbankConfig, compute_and_store, cut_num_frames, feature_paths, utterance_cuts
from asr_bl.train import load_model_dir
from asr_bl.train.checkpoint import list_checkpoints, load_checkpoint, newest_valid_checkpoint

REPO = Path(__file__).resolve().parents[1]
SR = 8000
NUM_PDFS = 7


def _signal(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.05 + 0.5 * (np.sin(2 * np.pi * (0.7 + 0.1 * seed) * t) > 0)
    return envelope * np.sin(2 * np.pi * (300 + 80 * seed) * t) + 0.01 * rng.standard_normal(t.shape)


def _labels_from_energy(feats_logmel: np.ndarray) -> np.ndarray:
    energy = feats_logmel.mean(axis=1)
    edges = np.quantile(energy, np.linspace(0, 1, NUM_PDFS - 1)[1:-1])
    return np.digitize(energy, edges).astype(np.int64)  # pdf NUM_PDFS - 1 never occurs: a zero count


def _make_part(root: Path, part: str, num_recordings: int, seed0: int):
    recordings, sups = [], []
    for r in range(num_recordings):
        path = root / "wav" / f"{part}{r}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.stack([_signal(4.0, seed0 + 2 * r), _signal(4.0, seed0 + 2 * r + 1)], axis=1), SR)
        rec = Recording.from_file(path)
        recordings.append(rec)
        for i, (start, dur) in enumerate([(0.0, 0.8), (0.9, 1.3), (2.3, 1.6)]):
            sups.append(SupervisionSegment(id=f"{rec.id}-{i}", recording_id=rec.id, start=start, duration=dur,
                                           channel=i % 2, speaker=f"{rec.id}-{'AB'[i % 2]}"))
    cuts = utterance_cuts(RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(sups))
    return compute_and_store(cuts, root / "fbank", "synth", part, FbankConfig())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """An alignment dir exp/tri2_ali-like: aligned train and dev cuts, pdf_counts, num_pdfs, tree."""
    from asr_bl.features import FeatureLoader

    root = tmp_path_factory.mktemp("corpus")
    ali = root / "ali"
    ali.mkdir()
    counts = np.zeros(NUM_PDFS, dtype=np.int64)
    out = {}
    for part, n, seed in (("train", 4, 0), ("dev", 1, 50)):
        cuts = _make_part(root, part, n, seed)
        cmvn = CmvnStats.load(feature_paths(root / "fbank", "synth", part)["cmvn"])
        loader = FeatureLoader(FbankConfig(), cmvn_stats=cmvn)
        labels = {c.id: _labels_from_energy(x) for c, x in zip(cuts, loader.load_logmel(cuts))}
        if part == "train":
            for v in labels.values():
                counts += np.bincount(v, minlength=NUM_PDFS)
        aligned = attach_alignment(cuts, {"pdf_ali": labels}, ali / f"synth_cuts_{part}.arrays.h5")
        path = ali / f"synth_cuts_{part}.jsonl.gz"
        aligned.to_file(path)
        out[part] = path
    (ali / "pdf_counts").write_text("[ " + " ".join(map(str, counts.tolist())) + " ]\n")
    (ali / "num_pdfs").write_text(f"{NUM_PDFS}\n")
    (ali / "tree").write_bytes(b"ContextDependency stand-in for the test\n")
    return {"root": root, "ali": ali, "train": out["train"], "dev": out["dev"], "fbank": root / "fbank"}


def _args(corpus, out_dir: Path, *extra: str) -> list:
    return ["--model", "bl-resnet22-a4-b1", "--width", "0.0625", "--ali-dir", str(corpus["ali"]),
            "--cuts", str(corpus["train"]), "--dev-cuts", str(corpus["dev"]), "--feature-dir", str(corpus["fbank"]),
            "--out-dir", str(out_dir), "--epochs", "2", "--halve-from-epoch", "2", "--batch-frames", "100",
            "--chunk-frames", "20", "--lr", "0.3", "--num-workers", "0", "--num-threads", "1",
            "--no-tensorboard", "--no-progress", *extra]


def _cli(args, env_extra=None, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "asr_bl.bin.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


def _weights(out_dir: Path) -> dict:
    return torch.load(out_dir / "model.pt")["state_dict"]


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    """An uninterrupted reference run (2 epochs)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    result = _cli(_args(corpus, out, "--checkpoint-every", "3"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_training_writes_a_model_dir_that_decoding_loads(corpus, straight):
    metrics = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert metrics[1]["lr"] == pytest.approx(0.3 * 100 / 512 / 2)  # linear lr rule; halved from epoch 2
    for m in metrics:
        assert m["dev"]["frames"] == sum(cut_num_frames(c, FbankConfig()) for c in CutSet.from_file(corpus["dev"]))
    config = json.loads((straight / "config.json").read_text())
    assert config["config"]["batch_frames"] == 100 and config["base_lr"] == pytest.approx(0.3 * 100 / 512)

    am = load_model_dir(straight)
    card = am.card
    assert (card.preset, card.width, card.num_pdfs) == ("bl-resnet22-a4-b1", 0.0625, NUM_PDFS)
    from asr_bl.stage import fingerprint

    assert card.tree_fingerprint == fingerprint(corpus["ali"] / "tree")["sha1"]
    assert card.feature_config == FbankConfig().to_dict()
    from asr_bl.bin.flops import measure

    row = measure("bl-resnet22-a4-b1", num_classes=NUM_PDFS, width=0.0625)
    assert (card.macs, card.params) == (row["macs"], row["params"])
    assert np.isfinite(am.log_priors.numpy()).all()  # pdf 6 has a zero count: floored

    # log_likelihoods = log-softmax - log-prior over the whole utterance, chunked exactly.
    from asr_bl.features import FeatureLoader
    from asr_bl.models import pad_context

    dev = CutSet.from_file(corpus["dev"])
    cmvn = CmvnStats.load(feature_paths(corpus["fbank"], "synth", "dev")["cmvn"])
    feats = FeatureLoader(FbankConfig(), cmvn_stats=cmvn)(dev)[1]
    ll = am.log_likelihoods(feats)
    assert ll.shape == (feats.shape[-1], NUM_PDFS) and ll.dtype == torch.float32 and ll.device.type == "cpu"
    with torch.no_grad():
        one_pass = torch.log_softmax(am.model(pad_context(torch.from_numpy(feats)[None]))[0], -1) - am.log_priors
    torch.testing.assert_close(ll, one_pass, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(am.log_likelihoods(feats, chunk_frames=7), ll, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_exact(corpus, straight, tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "asr_bl.bin.train", *_args(corpus, out, "--checkpoint-every", "3")],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = out / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list_checkpoints(ckpts):  # final names only, not temporaries
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    found = newest_valid_checkpoint(ckpts)
    assert found is not None, "killed before any checkpoint"
    path, state = found
    assert not (out / "model.pt").exists(), "the run had finished before the kill"
    assert state["epoch"] == 0 and not state["epoch_done"], f"killed at {path}, not in the first epoch"

    resumed = _cli(_args(corpus, out, "--checkpoint-every", "3", "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {path}" in resumed.stderr
    a, b = _weights(straight), _weights(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    straight_metrics = (straight / "metrics.jsonl").read_text().splitlines()
    resumed_metrics = (out / "metrics.jsonl").read_text().splitlines()
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "train"}  # noqa: E731
    assert [strip(x) for x in straight_metrics] == [strip(x) for x in resumed_metrics]


def test_linear_schedule_anneals_every_step(corpus, tmp_path):
    """--lr-schedule linear: the rate falls within each epoch (the paper's schedule is flat there)."""
    from asr_bl.train.config import TrainConfig

    cfg = TrainConfig(epochs=2, lr_schedule="linear", final_lr_fraction=0.1)
    assert [cfg.step_lr_factor(g, 10) for g in (0, 10, 20, 30)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert TrainConfig().step_lr_factor(5, 10) is None
    out = tmp_path / "linear"
    result = _cli(_args(corpus, out, "--lr-schedule", "linear", "--final-lr-fraction", "0.1"))
    assert result.returncode == 0, result.stderr[-3000:]
    base = 0.3 * 100 / 512
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == 2 and base > lrs[0] > lrs[1] and lrs[1] < 0.5 * base
    assert json.loads((out / "config.json").read_text())["config"]["lr_schedule"] == "linear"


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(corpus, tmp_path):
    one = tmp_path / "one"
    r1 = _cli(_args(corpus, one, "--accum-steps", "2", "--epochs", "1"))
    assert r1.returncode == 0, r1.stderr[-3000:]
    two = tmp_path / "two"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                         "-m", "asr_bl.bin.train", *_args(corpus, two, "--epochs", "1")],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "2 processes" in r2.stderr
    m1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert m1[0]["global_step"] == m2[0]["global_step"] > 3
    assert m1[0]["train"]["frames"] == m2[0]["train"]["frames"]
    assert m1[0]["train"]["ce"] == pytest.approx(m2[0]["train"]["ce"], rel=1e-5)
    a, b = _weights(one), _weights(two)
    for key in a:
        if "running" in key or "num_batches" in key:
            continue  # BN statistics: per micro-batch in both, but DDP keeps rank 0's (see trainer docstring)
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    # The per-step loss curve, from the tensorboard-free record: the checkpoints' epoch totals agree.
    s1 = load_checkpoint(one / "checkpoints" / "epoch-001.pt")["epoch_totals"]
    s2 = load_checkpoint(two / "checkpoints" / "epoch-001.pt")["epoch_totals"]
    assert s1[1] == s2[1] and s1[0] == pytest.approx(s2[0], rel=1e-5)


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_last_good_checkpoint_intact(corpus, straight, tmp_path):
    out = tmp_path / "nan"
    result = _cli(_args(corpus, out, "--checkpoint-every", "3", "--fault-nan-step", "5"))
    assert result.returncode == 1
    last = out / "checkpoints" / "step-00000003.pt"
    assert "non-finite loss (nan) at global step 5" in result.stderr and str(last) in result.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000003.pt"]
    assert not (out / "model.pt").exists()
    state = load_checkpoint(last)
    # The kept checkpoint is the uninterrupted run's state at step 3 (nothing diverged got in).
    reference = _cli(_args(corpus, tmp_path / "ref", "--checkpoint-every", "3", "--stop-after-steps", "3"))
    assert reference.returncode == 0, reference.stderr[-2000:]
    ref = load_checkpoint(tmp_path / "ref" / "checkpoints" / "step-00000003.pt")
    for key, value in ref["model_state"].items():
        assert torch.equal(state["model_state"][key], value), key
    assert all(torch.isfinite(v.float()).all() for v in state["model_state"].values())


def _main(args, capsys) -> subprocess.CompletedProcess:
    """The CLI in this process (no interpreter start-up): its exit code and stderr."""
    from asr_bl.bin.train import main

    threads = torch.get_num_threads()
    capsys.readouterr()
    try:
        code = main(args)
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(args, code, "", capsys.readouterr().err)


def _error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("asr_bl-train: error: ") and "Traceback" not in result.stderr
    return lines[-1]


def test_bad_inputs_are_refused_before_anything_is_written(corpus, tmp_path, capsys):
    ali = corpus["ali"]
    # Cuts without pdf_ali (the features' own cuts).
    plain = tmp_path / "plain" / "synth_cuts_train.jsonl.gz"
    plain.parent.mkdir()
    CutSet.from_file(corpus["fbank"] / "synth_cuts_train.jsonl.gz").to_file(plain)
    args = _args(corpus, tmp_path / "o1")
    args[args.index("--cuts") + 1] = str(plain)
    assert "have no 'pdf_ali' alignment" in _error_line(_main(args, capsys))
    assert not (tmp_path / "o1").exists()

    # An alignment one frame short of the features.
    short = tmp_path / "short"
    short.mkdir()
    cuts = CutSet.from_file(corpus["train"])
    labels = {c.id: c.load_custom("pdf_ali")[:-1] if i == 2 else c.load_custom("pdf_ali") for i, c in enumerate(cuts)}
    attach_alignment(cuts, {"pdf_ali": labels}, short / "a.h5").to_file(short / "synth_cuts_train.jsonl.gz")
    args = _args(corpus, tmp_path / "o2")
    args[args.index("--cuts") + 1] = str(short / "synth_cuts_train.jsonl.gz")
    line = _error_line(_main(args, capsys))
    assert "alignment frames but" in line and "feature frames" in line and list(cuts)[2].id in line

    # num_pdfs disagreeing with pdf_counts.
    bad_ali = tmp_path / "bad_ali"
    bad_ali.mkdir()
    for name in ("pdf_counts", "tree"):
        (bad_ali / name).write_bytes((ali / name).read_bytes())
    (bad_ali / "num_pdfs").write_text("2000\n")
    args = _args(corpus, tmp_path / "o3")
    args[args.index("--ali-dir") + 1] = str(bad_ali)
    assert "says 2000 pdfs but" in _error_line(_main(args, capsys))

    # Labels beyond the output layer (alignments of another tree than the counts').
    (bad_ali / "num_pdfs").write_text("3\n")
    (bad_ali / "pdf_counts").write_text("[ 5 5 5 ]\n")
    assert "outside [0, 3)" in _error_line(_main(args, capsys))

    # An empty dev set.
    empty = tmp_path / "empty" / "synth_cuts_dev.jsonl.gz"
    empty.parent.mkdir()
    CutSet.from_cuts([]).to_file(empty)
    args = _args(corpus, tmp_path / "o4")
    args[args.index("--dev-cuts") + 1] = str(empty)
    assert "the dev set is empty" in _error_line(_main(args, capsys))
    assert not (tmp_path / "o4").exists()


def test_resume_from_another_preset_or_width_is_refused_naming_both(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    first = _cli(_args(corpus, out, "--checkpoint-every", "2", "--stop-after-steps", "2"))
    assert first.returncode == 0, first.stderr[-2000:]
    args = _args(corpus, out, "--resume")
    args[args.index("--model") + 1] = "resnet22"
    line = _error_line(_main(args, capsys))
    assert "bl-resnet22-a4-b1 width 0.0625" in line and "not resnet22 width 0.0625" in line
    args = _args(corpus, out, "--resume")
    args[args.index("--width") + 1] = "0.125"
    line = _error_line(_main(args, capsys))
    assert "bl-resnet22-a4-b1 width 0.0625" in line and "bl-resnet22-a4-b1 width 0.125" in line
    # Without --resume an existing run is not silently continued or overwritten.
    assert "pass --resume" in _error_line(_main(_args(corpus, out), capsys))


@pytest.mark.slow
def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(corpus, tmp_path):
    """A real ENOSPC: the run dir is a small tmpfs, mounted in a private user+mount namespace."""
    if subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode:
        pytest.skip("cannot create a mount namespace here (unshare); no small filesystem to fill")
    probe = tmp_path / "probe"
    sized = _cli(_args(corpus, probe, "--checkpoint-every", "2", "--stop-after-steps", "2"))
    assert sized.returncode == 0, sized.stderr[-2000:]
    size = (probe / "checkpoints" / "step-00000002.pt").stat().st_size
    mnt = tmp_path / "small"
    mnt.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    run_args = " ".join(_args(corpus, mnt / "run", "--checkpoint-every", "2"))
    # Room for one checkpoint (plus the small files) but not for a second one beside it.
    script = (f"mount -t tmpfs -o size={int(size * 1.6)} tmpfs {mnt} && "
              f"{sys.executable} -m asr_bl.bin.train {run_args}; echo rc=$?; "
              f"{sys.executable} -c \"from asr_bl.train.checkpoint import load_checkpoint as l; "
              f"s=l('{mnt}/run/checkpoints/step-00000002.pt'); print('kept', s['global_step'])\"; "
              f"ls {mnt}/run/checkpoints")
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert "rc=1" in out, result.stdout + result.stderr[-2000:]
    assert "No space left on device" in result.stderr and "step-00000002.pt is intact" in result.stderr
    assert "kept 2" in out
    assert out.strip().splitlines()[-1] == "step-00000002.pt"  # no temporary file left behind


def test_model_dir_refuses_a_pickle_that_would_run_code(corpus, straight, tmp_path):
    import shutil

    from asr_bl.train import ModelDirError

    evil_dir = tmp_path / "evil"
    shutil.copytree(straight, evil_dir, ignore=shutil.ignore_patterns("checkpoints"))
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    weights = torch.load(straight / "model.pt")
    weights["extra"] = Evil()
    torch.save(weights, evil_dir / "model.pt")
    with pytest.raises(ModelDirError, match="refused to load"):
        load_model_dir(evil_dir)
    assert not marker.exists()
    # A mismatched card (another width) is refused, naming the file.
    card = json.loads((straight / "card.json").read_text())
    card["width"] = 0.125
    mismatch = tmp_path / "mismatch"
    shutil.copytree(straight, mismatch, ignore=shutil.ignore_patterns("checkpoints"))
    (mismatch / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelDirError, match="model.pt does not match"):
        load_model_dir(mismatch)
