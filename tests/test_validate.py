"""Bad input never passes silently (issue 11): each fault, one at a time, on real files.

Real 8 kHz WAVs written with soundfile, real lhotse manifests written the way stage 0 writes them,
the real console tools run in-process (exit codes and their one-line errors), real lang dirs and a
real (flat-start) GMM-HMM file.
"""
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asr_bl.bin import features as features_tool
from asr_bl.bin import gmm as gmm_tool
from asr_bl.bin import validate as validate_tool
from asr_bl.features import FbankConfig, compute_and_store, feature_paths, load_feature_part, utterance_cuts
from asr_bl.manifests import manifest_path, manifest_paths, write_manifest
from asr_bl.validate import DataError, oov_stats, read_manifest, validate_data_dir, validate_lang_dir

SR = 8000
N = 6
LEXICON = "hello HH AH L OW\nworld W ER L D\n"
REPO = Path(__file__).resolve().parents[1]


def _wav(path: Path, seconds: float = 2.0, rate: int = SR, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (150 + 20 * seed) * t) + 0.01 * rng.standard_normal(t.shape)
    sf.write(str(path), x, rate, subtype="PCM_16")


def make_data(root: Path, texts=None, fault: str = "none"):
    """N one-utterance recordings and their stage-0 manifests under ``root/man``; ``fault`` breaks r1."""
    root.mkdir(parents=True, exist_ok=True)
    recs, sups = [], []
    for i in range(N):
        p = root / f"r{i}.wav"
        _wav(p, seed=i)
        recs.append(Recording.from_file(p, recording_id=f"r{i}"))
        text = texts[i] if texts is not None else "hello world"
        sups.append(SupervisionSegment(id=f"r{i}-u", recording_id=f"r{i}", start=0.1, duration=1.5, channel=0,
                                       text=text, speaker=f"s{i}"))
    bad = root / "r1.wav"
    if fault == "deleted":
        bad.unlink()
    elif fault == "zero-byte":
        bad.write_bytes(b"")
    elif fault == "garbage":
        bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    elif fault == "other-rate":
        _wav(bad, rate=16000, seed=1)
    elif fault == "past-end":
        sups[1] = SupervisionSegment(id="r1-u", recording_id="r1", start=1.0, duration=1.5, channel=0,
                                     text="hello world", speaker="s1")
    man = root / "man"
    rp, sp = manifest_paths(man, "synth", "train")
    write_manifest(RecordingSet.from_recordings(recs), rp)
    write_manifest(SupervisionSet.from_segments(sups), sp)
    return man


def run_features(capsys, man: Path, out: Path, *extra: str):
    rc = features_tool.main(["--manifest-dir", str(man), "--out-dir", str(out), "--num-jobs", "1",
                             "--storage", "lilcom", *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# ------------------------------------------------------------------------------------- bad audio

@pytest.mark.parametrize("fault,reason", [
    ("deleted", "does not exist"),
    ("zero-byte", "empty (0 bytes)"),
    ("garbage", "unreadable"),
    ("other-rate", "sampled at 16000 Hz, the manifest says 8000 Hz"),
    ("past-end", "past the end of recording r1"),
])
def test_features_fail_on_bad_audio_naming_the_cut(tmp_path, capsys, fault, reason):
    man = make_data(tmp_path, fault=fault)
    out = tmp_path / "fbank"
    rc, _, err = run_features(capsys, man, out)
    paths = feature_paths(out, "synth", "train")
    assert rc == 2, err
    assert "1 of 6 cuts" in err and "r1-u" in err and reason in err and str(paths["failures"]) in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert paths["failures"].read_text().startswith("r1-u\t") and reason in paths["failures"].read_text()
    assert not paths["record"].exists() and not paths["cuts"].exists()  # the part is not complete


def test_features_tolerance_drops_and_records_bad_audio(tmp_path, capsys):
    man = make_data(tmp_path, fault="garbage")
    out = tmp_path / "fbank"
    rc, stdout, err = run_features(capsys, man, out, "--max-bad-audio", "0.2")
    paths = feature_paths(out, "synth", "train")
    assert rc == 0, err
    assert "1 of 6 cuts dropped" in stdout
    assert list(read_manifest(paths["cuts"], "cuts").ids) == [f"r{i}-u" for i in range(N) if i != 1]
    assert json.loads(paths["record"].read_text())["summary"] == {"cuts": 5, "requested": 6, "dropped": 1}
    assert "r1-u" in paths["failures"].read_text()
    # A second run skips (the dropped cut is no "missing cut"); a stricter tolerance redoes and fails.
    rc, _, err = run_features(capsys, man, out, "--max-bad-audio", "0.2")
    assert rc == 0, err
    rc, _, err = run_features(capsys, man, out)
    assert rc == 2 and "r1-u" in err


def test_features_good_data_passes_and_writes_no_failures(tmp_path, capsys):
    man = make_data(tmp_path)
    out = tmp_path / "fbank"
    rc, stdout, err = run_features(capsys, man, out)
    assert rc == 0, err
    assert "train: 6 cuts" in stdout and "dropped" not in stdout
    assert not feature_paths(out, "synth", "train")["failures"].exists()
    report = validate_data_dir(man, words={"hello", "world"})
    assert report.ok and not report.warnings, report.lines()
    assert report.stats["synth train"]["oov"]["oov_tokens"] == 0


# ------------------------------------------------------------------- interrupted / truncated store

def test_truncated_feature_store_is_detected_and_redone(tmp_path, capsys):
    man = make_data(tmp_path)
    out = tmp_path / "fbank"
    assert run_features(capsys, man, out)[0] == 0
    paths = feature_paths(out, "synth", "train")
    store = Path(f"{paths['storage']}.lca")
    original = {p.name: p.read_bytes() for p in out.iterdir() if p.name != paths["record"].name}
    with open(store, "r+b") as f:
        f.truncate(store.stat().st_size // 3)
    with pytest.raises(DataError, match="truncated"):
        load_feature_part(out, "synth", "train")
    rc, stdout, err = run_features(capsys, man, out)
    assert rc == 0 and "redoing" in stdout and "skipping" not in stdout
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != paths["record"].name} == original
    load_feature_part(out, "synth", "train")


def test_kill_during_overwrite_then_rerun_is_byte_identical(tmp_path):
    """kill -9 of a running ``asr_bl-features --force`` at a random point; the re-run must not
    skip a broken part: it gives byte-identical outputs."""
    man = make_data(tmp_path)
    out = tmp_path / "fbank"
    cmd = [sys.executable, "-m", "asr_bl.bin.features", "--manifest-dir", str(man), "--out-dir", str(out),
           "--num-jobs", "1", "--storage", "lilcom"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    record = feature_paths(out, "synth", "train")["record"]
    original = {p.name: p.read_bytes() for p in out.iterdir() if p != record}
    proc = subprocess.Popen(cmd + ["--force"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Wait until the redo has started (it logs its decision), then kill it somewhere in its work.
    assert proc.stdout is not None
    for line in proc.stdout:
        if b"redoing (--force)" in line:
            break
    time.sleep(random.Random(os.getpid()).uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p != record and ".tmp-" not in p.name} == original


# ----------------------------------------------------------------------------------- transcripts

def test_empty_transcript_is_an_error_naming_the_supervision(tmp_path, capsys):
    man = make_data(tmp_path, texts=["hello world", "   ", "hello", "world", "hello", "world"])
    rc, _, err = run_features(capsys, man, tmp_path / "fbank")
    assert rc == 2 and "supervision r1-u: empty transcript" in err
    report = validate_data_dir(man)
    assert [p.item for p in report.errors] == ["supervision r1-u"]


def test_duplicate_ids_are_an_error_naming_id_and_file(tmp_path, capsys):
    man = make_data(tmp_path)
    sp = manifest_paths(man, "synth", "train")[1]
    lines = gzip.decompress(sp.read_bytes()).decode().splitlines()
    lines.append(lines[2])  # r2-u twice, as a merge of two preparations would give
    sp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    rc, _, err = run_features(capsys, man, tmp_path / "fbank")
    assert rc == 2 and "duplicate ids 'r2-u'" in err and str(sp) in err


def _lang(tmp_path, lexicon: str = LEXICON, name: str = "lang") -> Path:
    (tmp_path / f"{name}.txt").write_text(lexicon)
    assert gmm_tool.main(["prepare-lang", "--lexicon", str(tmp_path / f"{name}.txt"),
                          "--out-dir", str(tmp_path / name)]) == 0
    return tmp_path / name


def test_oov_rate_summary_and_error(tmp_path):
    from asr_bl.hmm.lang import load_lang

    lang = load_lang(_lang(tmp_path))
    texts = ["hello world", "HELLO WORLD", "hello there", "world", "hello", "world"]
    man = make_data(tmp_path / "d", texts=texts)
    recs, sups = (read_manifest(p, k) for p, k in zip(manifest_paths(man, "synth", "train"),
                                                      ("recordings", "supervisions")))
    cuts = list(utterance_cuts(recs, sups))

    def args(rate: str):
        return gmm_tool.get_parser().parse_args(["align", "--cuts", "c.jsonl.gz", "--lang", str(tmp_path / "lang"),
                                                 "--out-dir", "x", "--model-dir", "m", "--max-oov-rate", rate])

    with pytest.raises(DataError, match=r"OOV rate 33\.33% \(3 of 9 words; 1 of 6 utterances all OOV\)"):
        gmm_tool._check_transcripts(args("0.1"), lang, cuts)
    summary = gmm_tool._check_transcripts(args("0.5"), lang, cuts)
    assert summary["oov_tokens"] == 3 and summary["all_oov_utterances"] == 1
    assert dict(map(tuple, summary["top_oov"])) == {"HELLO": 1, "WORLD": 1, "there": 1}
    # The data report counts it per part too.
    report = validate_data_dir(man, words={"hello", "world"}, max_oov_rate=0.1)
    assert not report.ok and "OOV rate 33.33%" in str(report.errors[0])
    assert any("all OOV" in str(w) for w in report.warnings)
    assert oov_stats({"a": "x y"}, {"x"}).rate == 0.5


def test_gmm_refuses_empty_transcript(tmp_path):
    from asr_bl.hmm.lang import load_lang

    lang = load_lang(_lang(tmp_path))
    man = make_data(tmp_path / "d", texts=["hello", "", "hello", "world", "hello", "world"])
    recs, sups = (read_manifest(p, k) for p, k in zip(manifest_paths(man, "synth", "train"),
                                                      ("recordings", "supervisions")))
    cuts = list(utterance_cuts(recs, sups))
    args = gmm_tool.get_parser().parse_args(["train-mono", "--cuts", "c.jsonl.gz", "--lang", str(tmp_path / "lang"),
                                             "--out-dir", "x"])
    with pytest.raises(DataError, match=r"1 of 6 cuts have an empty transcript \(r1-u\)"):
        gmm_tool._check_transcripts(args, lang, cuts)


# ----------------------------------------------------------------------------------- lexicon / lang

@pytest.mark.parametrize("content,match", [
    (b"<eps> AH\nhello HH AH L OW\n", r"lex\.txt:1: '<eps>' is reserved"),
    (b"\n\n# a comment\n\n", r"lex\.txt:3: '#': words starting with '#' are reserved"),
    (b"\n\n", r"holds no lexicon entries"),
    (b"hello HH AH L OW\n\xff\xfe W ER\n", r"lex\.txt:2: not UTF-8"),
])
def test_bad_lexicon_refused_before_anything_is_written(tmp_path, capsys, content, match):
    import re

    (tmp_path / "lex.txt").write_bytes(content)
    rc = gmm_tool.main(["prepare-lang", "--lexicon", str(tmp_path / "lex.txt"), "--out-dir", str(tmp_path / "lang")])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(match, err), err
    assert not (tmp_path / "lang" / "words.txt").exists()


def test_lang_dir_validation(tmp_path, capsys):
    lang = _lang(tmp_path)
    report = validate_lang_dir(lang)
    assert report.ok, report.lines()
    assert validate_tool.main(["lang", str(lang)]) == 0
    words = (lang / "words.txt").read_text().splitlines()
    (lang / "words.txt").write_text("\n".join(words[:2] + [f"<eps> {len(words)}"] + words[2:]) + "\n")
    assert validate_tool.main(["lang", str(lang)]) == 1
    assert "symbol '<eps>' appears twice" in capsys.readouterr().out


def _flat_model(lang_dir: Path, path: Path) -> None:
    from asr_bl.hmm.lang import load_lang
    from asr_bl.hmm.train.update import init_mono

    dim = 39
    init_mono(load_lang(lang_dir), dim, np.zeros(dim), np.ones(dim)).save(path)


def test_align_with_a_model_of_another_lang_refused_before_writing(tmp_path, capsys):
    lang_a = _lang(tmp_path, name="lang_a")
    lang_b = _lang(tmp_path, LEXICON + "cat K AE T\n", name="lang_b")  # two more phones
    (tmp_path / "mono").mkdir()
    _flat_model(lang_a, tmp_path / "mono" / "final.mdl")
    man = make_data(tmp_path / "d")
    out = tmp_path / "ali"
    rc = gmm_tool.main(["align", "--cuts", str(manifest_path(man, "synth", "supervisions", "train")),
                        "--lang", str(lang_b), "--model-dir", str(tmp_path / "mono"), "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "trained with another lang" in err and "final.mdl" in err, err
    assert not out.exists()


def test_truncated_model_and_alignments_name_the_file(tmp_path, capsys):
    from asr_bl.hmm.export import read_int_ark

    lang = _lang(tmp_path)
    (tmp_path / "mono").mkdir()
    mdl = tmp_path / "mono" / "final.mdl"
    _flat_model(lang, mdl)
    mdl.write_bytes(mdl.read_bytes()[: mdl.stat().st_size // 2])
    out = tmp_path / "ali"
    rc = gmm_tool.main(["align", "--cuts", "none.jsonl.gz", "--lang", str(lang), "--model-dir", str(tmp_path / "mono"),
                        "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{mdl}: not a readable asr_bl GMM-HMM" in err and "truncated?" in err, err
    assert not out.exists()
    ark = tmp_path / "ali.ark.txt"
    ark.write_text("u1 1 2 3\nu2 4 5 6\n")
    assert list(read_int_ark(ark)) == ["u1", "u2"]
    ark.write_text("u1 1 2 3\nu2 4 5")
    with pytest.raises(DataError, match="ali.ark.txt: does not end with a newline"):
        read_int_ark(ark)


# ------------------------------------------------------------------------------ corrupt manifests

def test_corrupt_manifests_name_the_file(tmp_path, capsys):
    man = make_data(tmp_path)
    rp, sp = manifest_paths(man, "synth", "train")
    good = sp.read_bytes()
    sp.write_bytes(good[: len(good) // 2])  # a real truncated gzip
    with pytest.raises(DataError, match=r"corrupt or truncated"):
        read_manifest(sp, "supervisions")
    rc, _, err = run_features(capsys, man, tmp_path / "fbank")
    assert rc == 2 and str(sp) in err and "corrupt or truncated" in err and "Traceback" not in err
    text = gzip.decompress(good).decode()
    sp.write_bytes(gzip.compress(text[: len(text) - 40].encode()))  # complete gzip, JSON cut short
    with pytest.raises(DataError, match=r"jsonl\.gz:6: not valid JSON"):
        read_manifest(sp, "supervisions")
    sp.write_bytes(b"")
    rc, _, err = run_features(capsys, man, tmp_path / "fbank")
    assert rc == 2 and f"{sp}: empty file (0 bytes)" in err
    assert not (tmp_path / "fbank" / "synth_done_train.json").exists()  # no finished 0-cut part
    sp.write_bytes(good)
    assert len(read_manifest(sp, "supervisions")) == N and len(read_manifest(rp, "recordings")) == N


def test_read_manifest_equals_lhotse_loading(tmp_path):
    from lhotse import load_manifest

    man = make_data(tmp_path)
    out = tmp_path / "fbank"
    cuts = compute_and_store(utterance_cuts(*(load_manifest(p) for p in manifest_paths(man, "synth", "train"))),
                             out, "synth", "train", FbankConfig())
    path = feature_paths(out, "synth", "train")["cuts"]
    assert isinstance(read_manifest(path, "cuts"), CutSet)
    assert [c.to_dict() for c in read_manifest(path, "cuts")] == [c.to_dict() for c in load_manifest(path)]
    assert [c.to_dict() for c in cuts] == [c.to_dict() for c in load_manifest(path)]


def test_validate_cli_data_report(tmp_path, capsys):
    man = make_data(tmp_path, fault="other-rate")
    assert validate_tool.main(["data", str(man)]) == 1
    out = capsys.readouterr().out
    assert "FAILED (1 errors" in out and "recording r1: audio file" in out and "16000 Hz" in out
    good = make_data(tmp_path / "good")
    (tmp_path / "lex.txt").write_text(LEXICON)
    assert validate_tool.main(["data", str(good), "--lexicon", str(tmp_path / "lex.txt")]) == 0
    assert "OK (0 errors, 0 warnings)" in capsys.readouterr().out
