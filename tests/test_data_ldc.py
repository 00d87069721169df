"""Miniature LDC trees (SWB-1 + MS98, Fisher, Hub5'00) -> manifests: speakers, durations, splits, errors."""
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_bl.data import sphere
from asr_bl.data.ldc import (
    LdcLayoutError,
    LdcPrepConfig,
    check_eval2000_layout,
    check_fisher_layout,
    check_switchboard_layout,
    manifest_paths,
    prepare_eval2000,
    prepare_fisher,
    prepare_ldc,
    prepare_switchboard,
    remove_duplicates,
)
from asr_bl.data.sphere import read_sphere_header

SR = 8000


def write_sph(path: Path, seconds: float, seed: int) -> None:
    """A two-channel 8 kHz uncompressed SPHERE file: a different tone + noise per side."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    a = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.02 * rng.standard_normal(t.shape)
    b = 0.3 * np.sin(2 * np.pi * 700 * t) + 0.02 * rng.standard_normal(t.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([a, b], axis=1), SR, format="NIST", subtype="PCM_16")


@pytest.fixture()
def sph2pipe_on_path(tmp_path, monkeypatch):
    """sph2pipe is not installed here: put the package's uncompressed-SPHERE stand-in on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "sph2pipe"
    # Run the module file itself: `-m asr_bl.data.sphere` would import the whole package per call.
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{sphere.__file__}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return script


def ms98_lines(name: str, side: str, segments):
    return "".join(
        f"{name}{side}-ms98-a-{i:04d} {start:.6f} {end:.6f} {text}\n"
        for i, (start, end, text) in enumerate(segments, start=1)
    )


@pytest.fixture()
def swbd_tree(tmp_path):
    """LDC97S62/swb1_d1/data/sw0NNNN.sph + swb_ms98_transcriptions/NN/NNNN/swNNNN{A,B}-ms98-a-trans.text."""
    audio = tmp_path / "LDC97S62"
    trans = tmp_path / "swb_ms98_transcriptions"
    for k, conv in enumerate(["2001", "2005"]):
        write_sph(audio / "swb1_d1" / "data" / f"sw0{conv}.sph", 8.0, seed=k)
        d = trans / conv[:2] / conv
        d.mkdir(parents=True)
        a = [(0.0, 0.5, "[silence]"), (0.5, 2.0, "hi um i'm [laughter-calling] about t[he]-"),
             (2.0, 3.0, "uh-huh"), (3.5, 5.25, "i worked at i_b_m [noise]"), (5.25, 6.0, "[silence]")]
        b = [(0.0, 1.0, "[silence]"), (1.0, 2.5, "yeah [bocket/bucket]"), (2.5, 3.0, "uh-huh"),
             (3.0, 4.0, "[silence] [vocalized-noise]"), (4.0, 7.5, "them_1 okay")]
        (d / f"sw{conv}A-ms98-a-trans.text").write_text(ms98_lines(f"sw{conv}", "A", a))
        (d / f"sw{conv}B-ms98-a-trans.text").write_text(ms98_lines(f"sw{conv}", "B", b))
        (d / f"sw{conv}A-ms98-a-word.text").write_text("")  # the word-alignment files sit beside them
    return audio, trans


@pytest.fixture()
def fisher_tree(tmp_path):
    root = tmp_path / "fisher"
    for part, (audio_id, trans_id) in enumerate([("LDC2004S13", "LDC2004T19"), ("LDC2005S13", "LDC2005T19")]):
        call = f"{part * 6000 + 1:05d}"
        sph = root / audio_id / f"fe_03_p{part + 1}_sph1" / "audio" / "000" / f"fe_03_{call}.sph"
        write_sph(sph, 6.0, seed=10 + part)
        t = root / trans_id / "data" / "trans" / "000" / f"fe_03_{call}.txt"
        t.parent.mkdir(parents=True)
        t.write_text(
            f"# fe_03_{call}.sph\n\n0.36 1.80 A: hello (( mike )) here\n\n1.90 3.20 B: hi [laugh] i'm sarah\n\n"
            "3.30 5.10 A: do you watch t. v.\n\n5.20 5.90 B: [noise]\n"
        )
        doc = root / trans_id / "doc"
        doc.mkdir(parents=True)
        (doc / f"fe_03_p{part + 1}_calldata.tbl").write_text(
            "CALL_ID,DATE_TIME,TOPICID,SIGGRADE,CNVGRADE,APIN,ASX.DL,APHNUM,APHSET,APHTYP,BPIN,BSX.DL,BPHNUM,BPHSET,BPHTYP\n"
            f"{call},20031223_153616,ENG01,4,4,{5000 + part},f.a,1,1,1,{6000 + part},m.a,2,1,1\n"
        )
    return root


@pytest.fixture()
def eval2000_tree(tmp_path):
    root = tmp_path / "eval2000"
    english = root / "LDC2002S09" / "hub5e_00" / "english"
    refs = root / "LDC2002T43" / "reference" / "english"
    refs.mkdir(parents=True)
    for k, name in enumerate(["sw_4390", "en_4156"]):
        write_sph(english / f"{name}.sph", 6.0, seed=20 + k)
        (refs / f"{name}.txt").write_text(
            f"#Language: eng\n#File id: {name[3:]}\n#Starting at 0 Ending at 6\n# 0 1 #BEGIN\n# 5 6 #END\n\n"
            "0.50 2.10 A: %um, <contraction e_form=\"[they=>they]['re=>are]\">they're {breath} here\n\n"
            "2.20 3.00 B: mhm\n\n3.10 5.50 A: ((i think)) so, %uh\n"
        )
    return root


def test_sphere_header_and_standin(tmp_path, sph2pipe_on_path):
    path = tmp_path / "x.sph"
    write_sph(path, 1.0, seed=0)
    header = read_sphere_header(path)
    assert header["sample_rate"] == 8000 and header["channel_count"] == 2 and header["sample_count"] == 8000
    with pytest.raises(ValueError, match="not a NIST SPHERE"):
        (tmp_path / "y.sph").write_bytes(b"RIFF0000WAVE")
        read_sphere_header(tmp_path / "y.sph")


def test_switchboard_speakers_per_side_and_text(swbd_tree, sph2pipe_on_path):
    recordings, sups = prepare_switchboard(*swbd_tree)
    assert sorted(recordings.ids) == ["sw02001", "sw02005"]
    assert recordings["sw02001"].duration == pytest.approx(8.0) and recordings["sw02001"].num_channels == 2
    sups = list(sups)
    # 3 words-bearing segments on A, 4 on B (the [silence]+[vocalized-noise] one keeps the noise).
    assert len(sups) == 2 * (3 + 4)
    for s in sups:
        assert s.speaker == f"{s.recording_id}-{'A' if s.channel == 0 else 'B'}"
    by_id = {s.id: s for s in sups}
    assert by_id["sw2001A-ms98-a-0002"].text == "hi um i'm calling about t-"
    assert by_id["sw2001A-ms98-a-0002"].duration == pytest.approx(1.5)
    assert by_id["sw2001A-ms98-a-0004"].text == "i worked at i b m [noise]"
    assert by_id["sw2001B-ms98-a-0002"].text == "yeah bucket"
    assert by_id["sw2001B-ms98-a-0005"].text == "them okay"
    # Kaldi order: conversation, side, start.
    keys = [(s.recording_id, s.channel, s.start) for s in sups]
    assert keys == sorted(keys)
    # The audio of a supervision loads through (the stand-in for) sph2pipe, from the right channel.
    audio = recordings["sw02001"].load_audio(channels=1, offset=1.0, duration=0.5)
    assert audio.shape == (1, 4000)
    spectrum = np.abs(np.fft.rfft(audio[0]))
    assert np.argmax(spectrum) * SR / 4000 == pytest.approx(700, abs=4)  # side B's tone


def test_fisher_speakers_are_pins(fisher_tree, sph2pipe_on_path):
    recordings, sups = prepare_fisher(fisher_tree)
    assert sorted(recordings.ids) == ["fe_03_00001", "fe_03_06001"]
    sups = list(sups)
    assert len(sups) == 8  # every utterance, including the first after the header
    first = [s for s in sups if s.recording_id == "fe_03_00001"]
    assert [s.speaker for s in first] == ["5000", "5000", "6000", "6000"]
    assert [s.text for s in first] == ["hello mike here", "do you watch t v", "hi [laughter] i'm sarah", "[noise]"]
    assert first[0].start == pytest.approx(0.36) and first[0].duration == pytest.approx(1.44)


def test_eval2000_references_and_parts(swbd_tree, fisher_tree, eval2000_tree, sph2pipe_on_path, tmp_path):
    _, sups = prepare_eval2000(eval2000_tree)
    texts = {(s.recording_id, s.start): s.text for s in sups}
    assert texts[("sw_4390", 0.5)] == "they're here"
    assert texts[("en_4156", 3.1)] == "i think so"
    assert all(s.speaker == f"{s.recording_id}-{'A' if s.channel == 0 else 'B'}" for s in sups)
    assert all("raw_text" in s.custom for s in sups)

    config = LdcPrepConfig(num_dev=3, max_duplicates=1)
    written = prepare_ldc(tmp_path / "manifests", *swbd_tree, fisher_dir=fisher_tree,
                          eval2000_dir=eval2000_tree, corpus="swbd", config=config)
    assert len(written) == 8 and all(p.is_file() for p in written)
    assert not list((tmp_path / "manifests").glob(".*partial*"))
    from lhotse import load_manifest

    parts = {}
    for part in ("train", "dev", "test_swb", "test_ch"):
        rec_path, sup_path = manifest_paths(tmp_path / "manifests", "swbd", part)
        parts[part] = (load_manifest(rec_path), load_manifest(sup_path))
    dev = list(parts["dev"][1])
    # The first 3 SWB utterances in Kaldi order: sw02001 side A.
    assert [s.id for s in dev] == ["sw2001A-ms98-a-0002", "sw2001A-ms98-a-0003", "sw2001A-ms98-a-0004"]
    assert list(parts["dev"][0].ids) == ["sw02001"]
    train = list(parts["train"][1])
    assert not {s.id for s in train} & {s.id for s in dev}
    # "uh-huh" occurs 3 times outside dev (sw02001B, sw02005A, sw02005B): capped to 1.
    assert sum(s.text == "uh-huh" for s in train) == 1
    # The two Fisher calls have identical transcripts: with the cap of 1 only the first call's 4 stay.
    assert sum(s.recording_id.startswith("fe_03") for s in train) == 4
    assert sorted(parts["train"][0].ids) == ["fe_03_00001", "sw02001", "sw02005"]  # only referenced ones
    assert [r.id for r in parts["test_swb"][0]] == ["sw_4390"]
    assert [r.id for r in parts["test_ch"][0]] == ["en_4156"]
    assert {s.recording_id for s in parts["test_ch"][1]} == {"en_4156"}


def test_remove_duplicates_keeps_first():
    from lhotse import SupervisionSegment

    sups = [SupervisionSegment(id=str(i), recording_id="r", start=i, duration=1, text=t)
            for i, t in enumerate(["yeah", "yeah", "no", "yeah"])]
    assert [s.id for s in remove_duplicates(sups, 2)] == ["0", "1", "2"]


def test_layout_errors_name_the_corpus_and_subdirectory(tmp_path, swbd_tree, fisher_tree, eval2000_tree):
    audio, trans = swbd_tree
    with pytest.raises(LdcLayoutError, match="LDC97S62.*missing directory"):
        check_switchboard_layout(tmp_path / "nowhere", trans)
    with pytest.raises(LdcLayoutError, match=r"LDC97S62: no '\*.sph' files"):
        check_switchboard_layout(trans, trans)
    (trans / "20" / "2005" / "sw2005B-ms98-a-trans.text").unlink()
    with pytest.raises(LdcLayoutError, match="sw2005B-ms98-a-trans.text"):
        check_switchboard_layout(audio, trans)
    with pytest.raises(LdcLayoutError, match="Fisher English audio LDC2005S13"):
        check_fisher_layout(fisher_tree, audio_ids=("LDC2004S13", "LDC2005S13_typo"))
    with pytest.raises(LdcLayoutError, match="LDC2004T19.*calldata"):
        for tbl in (fisher_tree / "LDC2004T19" / "doc").iterdir():
            tbl.unlink()
        check_fisher_layout(fisher_tree)
    with pytest.raises(LdcLayoutError, match="Hub5'00 audio LDC2002S09.*hub5e_00/english"):
        check_eval2000_layout(tmp_path / "eval2000_empty")
    (eval2000_tree / "LDC2002T43" / "reference" / "english" / "sw_4390.txt").unlink()
    (eval2000_tree / "LDC2002T43" / "reference" / "english" / "en_4156.txt").unlink()
    with pytest.raises(LdcLayoutError, match="Hub5'00 references LDC2002T43"):
        check_eval2000_layout(eval2000_tree)
    # Nothing is written when a later tree is wrong: layouts are checked before any reading.
    out = tmp_path / "out"
    with pytest.raises(LdcLayoutError):
        prepare_ldc(out, audio, trans, eval2000_dir=eval2000_tree)
    assert not out.exists()


def test_missing_sph2pipe_is_a_clear_error(swbd_tree, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(RuntimeError, match="sph2pipe.*lhotse install-sph2pipe"):
        prepare_switchboard(*swbd_tree)


def test_prepare_cli(swbd_tree, eval2000_tree, sph2pipe_on_path, tmp_path, capsys):
    from asr_bl.bin.prepare import main

    audio, trans = swbd_tree
    out = tmp_path / "manifests"
    # Empty values (unset recipe variables) mean "not given".
    args = ["--swbd", str(audio), "--swbd-text", str(trans), "--eval2000", str(eval2000_tree),
            "--fisher", "", "--fisher-text", "", "--eval2000-text", "", "--out-dir", str(out), "--num-dev", "2"]
    assert main(args) == 0
    manifests = sorted(out.glob("swbd_*_*.jsonl.gz"))
    assert len(manifests) == 8
    mtimes = [p.stat().st_mtime_ns for p in manifests]
    capsys.readouterr()
    # A second run skips (the stage record matches) and leaves every manifest untouched.
    assert main(args) == 0 and "prepare swbd: skipping" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in manifests] == mtimes
    # --force redoes it; the same content is not rewritten either (deterministic gzip).
    assert main(args + ["--force"]) == 0 and "redoing (--force)" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in manifests] == mtimes
    # Other settings: redone, the reason logged, and the dev manifest (one utterance more) rewritten.
    assert main(args[:-1] + ["3"]) == 0
    assert "arguments changed (config: " in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in manifests] != mtimes
    # A wrong directory: the documented error, exit code 2, nothing written.
    missing = ["--swbd", str(tmp_path / "missing"), "--swbd-text", str(trans), "--out-dir", str(tmp_path / "o2")]
    assert main(missing) == 2
    err = capsys.readouterr().err
    assert "LDC97S62" in err and "missing directory" in err and not (tmp_path / "o2").exists()
    assert main(["--swbd", str(audio), "--out-dir", str(tmp_path / "o3")]) == 2
    assert "swb_ms98_transcriptions" in capsys.readouterr().err
