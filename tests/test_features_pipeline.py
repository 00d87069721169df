"""Utterance cuts, stored features, per-side CMVN, and precomputed == on-the-fly loading."""
import json

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet, load_manifest

from asr_bl.features import (
    CmvnStats,
    FbankConfig,
    FeatureLoader,
    apply_cmvn,
    compute_and_store,
    compute_cmvn_stats,
    compute_fbank,
    cut_num_frames,
    feature_paths,
    load_feature_part,
    side_key,
    stack_deltas,
    utterance_cuts,
)
from asr_bl.features.pipeline import lilcom_available

SR = 8000


def conversation_wav(path, seconds: float, seed: int) -> None:
    """Two sides, each a gated harmonic tone (different pitch and level per side) plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    sides = []
    for f0, level in ((140.0, 0.3), (220.0, 0.1)):
        gate = (np.sin(2 * np.pi * 0.7 * t + level * 10) > 0).astype(float)
        voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
        sides.append(level * gate * voiced + 0.01 * rng.standard_normal(t.shape))
    sf.write(str(path), np.stack(sides, axis=1), SR, subtype="PCM_16")


@pytest.fixture()
def tiny_cuts(tmp_path):
    recordings, sups = [], []
    for r in range(2):
        path = tmp_path / f"conv{r}.wav"
        conversation_wav(path, 6.0, seed=r)
        rec = Recording.from_file(path)
        recordings.append(rec)
        for i in range(4):
            channel = i % 2
            sups.append(SupervisionSegment(
                id=f"{rec.id}-{'AB'[channel]}-{i}", recording_id=rec.id, start=0.2 + 1.3 * i,
                duration=1.0 + 0.0137 * i, channel=channel, speaker=f"{rec.id}-{'AB'[channel]}", text="hello",
            ))
    return utterance_cuts(RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(sups))


def test_utterance_cuts_follow_supervisions(tiny_cuts):
    assert len(tiny_cuts) == 8
    cut = tiny_cuts["conv0-B-1"]
    assert cut.channel == 1 and cut.start == pytest.approx(1.5) and cut.duration == pytest.approx(1.0137)
    assert cut.supervisions[0].start == 0.0
    assert side_key(cut) == "conv0:1"
    # 1.0137 s = 8110 samples -> (8110 + 40) // 80 = 101 frames.
    assert cut.num_samples == 8110 and cut_num_frames(cut, FbankConfig()) == 101


def test_compute_and_store_then_load(tiny_cuts, tmp_path):
    config = FbankConfig()
    out = tmp_path / "fbank"
    compute_and_store(tiny_cuts, out, "synth", "train", config)
    paths = feature_paths(out, "synth", "train")
    assert paths["cuts"].is_file() and paths["cmvn"].is_file() and paths["config"].is_file()
    assert not list(out.glob(".*partial*"))
    reloaded = load_manifest(paths["cuts"])
    assert list(reloaded.ids) == list(tiny_cuts.ids)
    for cut in reloaded:
        feats = cut.load_features()
        assert feats.shape == (cut_num_frames(cut, config), 64)
        # Stored features are the front end's, up to lilcom's quantisation (1/64) if lilcom is used.
        direct = compute_fbank(cut.load_audio()[0], SR, config)
        assert np.max(np.abs(feats - direct)) < (0.02 if lilcom_available() else 1e-5)
    stats = CmvnStats.load(paths["cmvn"])
    assert sorted(stats.keys) == ["conv0:0", "conv0:1", "conv1:0", "conv1:1"]
    assert stats.count.sum() == sum(cut_num_frames(c, config) for c in reloaded)
    loaded_cuts, loaded_stats, loaded_config = load_feature_part(out, "synth", "train")
    assert loaded_config == config and loaded_stats.keys == stats.keys and len(loaded_cuts) == 8
    with pytest.raises(FileNotFoundError, match="asr_bl-features --prefix synth"):
        load_feature_part(out, "synth", "dev")
    # Resumable: a complete part is loaded, not recomputed.
    stamp = paths["cuts"].stat().st_mtime_ns
    again = compute_and_store(tiny_cuts, out, "synth", "train", config)
    assert paths["cuts"].stat().st_mtime_ns == stamp and len(again) == len(tiny_cuts)


@pytest.mark.parametrize("mode", ["mean", "meanvar"])
def test_cmvn_is_per_conversation_side(tiny_cuts, tmp_path, mode):
    config = FbankConfig(cmvn=mode)
    cuts = compute_and_store(tiny_cuts, tmp_path / "fbank", "synth", "train", config)
    stats = CmvnStats.load(feature_paths(tmp_path / "fbank", "synth", "train")["cmvn"])
    loader = FeatureLoader(config, cmvn_stats=stats)
    normalised = loader.load_logmel(cuts)
    by_side = {}
    for cut, x in zip(cuts, normalised):
        by_side.setdefault(side_key(cut), []).append(x)
    for xs in by_side.values():
        frames = np.concatenate(xs)
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=0.03)  # lilcom-level error
        if mode == "meanvar":
            np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=0.03)
    # The two sides differ (level, pitch): one side's stats do not normalise the other.
    mean_a, _ = stats.mean_std("conv0:0")
    mean_b, _ = stats.mean_std("conv0:1")
    assert np.abs(mean_a - mean_b).max() > 0.5
    # The network input: (3, 64, T), CMVN before deltas (static row = normalised log-mel).
    stacked = loader(cuts)
    for x, logmel in zip(stacked, normalised):
        assert x.shape == (3, 64, logmel.shape[0])
        np.testing.assert_allclose(x, stack_deltas(logmel, 2), atol=1e-6)


def test_apply_cmvn_utterance_fallback_and_none():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    np.testing.assert_allclose(apply_cmvn(x, "meanvar").mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(apply_cmvn(x, "meanvar").std(axis=0), 1.0, atol=1e-4)
    assert apply_cmvn(x, "none") is x


def test_on_the_fly_equals_precomputed(tiny_cuts, tmp_path):
    config = FbankConfig()
    cuts = compute_and_store(tiny_cuts, tmp_path / "fbank", "synth", "train", config)
    stats = CmvnStats.load(feature_paths(tmp_path / "fbank", "synth", "train")["cmvn"])
    pre = FeatureLoader(config, cmvn_stats=stats, source="precomputed")(cuts)
    fly = FeatureLoader(config, cmvn_stats=stats, source="on-the-fly")(tiny_cuts)
    for a, b in zip(pre, fly):
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) < (0.05 if lilcom_available() else 1e-4)


def test_features_cli_on_manifest_dir(tmp_path, tiny_cuts, capsys):
    from lhotse import CutSet

    from asr_bl.bin.features import main

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    recordings = CutSet.from_cuts(tiny_cuts).decompose()[0]
    sups = [c.supervisions[0].with_offset(c.start) for c in tiny_cuts]
    for part in ("train", "dev"):
        recordings.to_file(manifests / f"synth_recordings_{part}.jsonl.gz")
        SupervisionSet.from_segments(sups).to_file(manifests / f"synth_supervisions_{part}.jsonl.gz")
    out = tmp_path / "fbank"
    assert main(["--manifest-dir", str(manifests), "--prefix", "synth", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train: 8 cuts" in printed and "dev: 8 cuts" in printed
    cuts = load_manifest(out / "synth_cuts_train.jsonl.gz")
    assert all(c.has_features for c in cuts)
    assert sorted(c.id for c in cuts) == sorted(tiny_cuts.ids)
    # Speed perturbation (before alignment): perturbed copies of train, on the same frame grid.
    out_sp = tmp_path / "fbank_sp"
    assert main(["--manifest-dir", str(manifests), "--out-dir", str(out_sp), "--parts", "train",
                 "--speed-perturb", "0.9"]) == 0
    sp = load_manifest(out_sp / "synth_cuts_train.jsonl.gz")
    assert len(sp) == 16 and sum(c.id.endswith("_sp0.9") for c in sp) == 8
    slow = sp["conv0-A-0_sp0.9"]
    assert slow.duration == pytest.approx(1.0 / 0.9, abs=1e-3)
    assert slow.load_features().shape[0] == cut_num_frames(slow, FbankConfig()) == 111
    capsys.readouterr()
    assert main(["--manifest-dir", str(manifests), "--prefix", "nope", "--out-dir", str(out)]) == 2
    assert "nope_supervisions_<part>.jsonl.gz" in capsys.readouterr().err
    assert main(["--manifest-dir", str(tmp_path / "absent"), "--out-dir", str(out)]) == 2
    assert "run stage 0" in capsys.readouterr().err
    # A finished part made with another configuration: a one-line error naming the fix, not a traceback.
    assert main(["--manifest-dir", str(manifests), "--out-dir", str(out), "--parts", "dev",
                 "--num-mel-bins", "40"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asr_bl-features: error: ") and "--force" in err and "Traceback" not in err


def test_complete_part_with_another_config_or_other_cuts_is_refused(tiny_cuts, tmp_path):
    out = tmp_path / "fbank"
    compute_and_store(tiny_cuts, out, "synth", "train", FbankConfig())
    paths = feature_paths(out, "synth", "train")
    with pytest.raises(ValueError, match=r"synth_done_train\.json records feature config.*overwrite=True.*--force"):
        compute_and_store(tiny_cuts, out, "synth", "train", FbankConfig(num_mel_bins=40))
    fewer = tiny_cuts.subset(first=5)
    with pytest.raises(ValueError, match=r"synth_cuts_train\.jsonl\.gz holds 8 cuts, 3 of them not requested"):
        compute_and_store(fewer, out, "synth", "train", FbankConfig())
    # overwrite=True (asr_bl-features --force) recomputes with the new configuration.
    redone = compute_and_store(tiny_cuts, out, "synth", "train", FbankConfig(num_mel_bins=40), overwrite=True)
    assert redone[0].load_features().shape[1] == 40
    assert FbankConfig.from_dict(json.loads(paths["config"].read_text())).num_mel_bins == 40


def test_missing_cmvn_side_warns_once_and_falls_back(tiny_cuts, tmp_path, caplog):
    config = FbankConfig()
    cuts = compute_and_store(tiny_cuts, tmp_path / "fbank", "synth", "train", config)
    conv0 = cuts.filter(lambda c: c.recording_id == "conv0").to_eager()
    conv1 = cuts.filter(lambda c: c.recording_id == "conv1").to_eager()
    stats_conv0 = compute_cmvn_stats(conv0, config)
    loader = FeatureLoader(config, cmvn_stats=stats_conv0)
    with caplog.at_level("WARNING", logger="asr_bl.features.pipeline"):
        got = loader.load_logmel(conv1)
        loader.load_logmel(conv1)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "no CMVN statistics" in r.getMessage()]
    assert len(warnings) == 1 and "conv1:" in warnings[0].getMessage()
    assert loader.sides_without_cmvn == ["conv1:0", "conv1:1"]
    # The fallback is unchanged: each utterance normalised by its own mean.
    for x in got:
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-4)


def test_finished_part_is_skipped_untouched_and_redone_when_its_audio_changes(tiny_cuts, tmp_path, caplog):
    out = tmp_path / "fbank"
    compute_and_store(tiny_cuts, out, "synth", "train", FbankConfig())
    files = sorted(p for p in out.iterdir() if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    with caplog.at_level("INFO", logger="asr_bl"):
        compute_and_store(tiny_cuts, out, "synth", "train", FbankConfig())
    assert any("features synth train: skipping" in r.getMessage() for r in caplog.records)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    # Same cut ids, other content (here: shorter cuts): redone, and the log says why.
    caplog.clear()
    shorter = CutSet.from_cuts(c.truncate(duration=c.duration / 2, preserve_id=True) for c in tiny_cuts)
    with caplog.at_level("INFO", logger="asr_bl"):
        redone = compute_and_store(shorter, out, "synth", "train", FbankConfig())
    assert any("features synth train: redoing, arguments changed (cuts_sha1" in r.getMessage()
               for r in caplog.records)
    assert redone[0].duration == pytest.approx(tiny_cuts[0].duration / 2)
