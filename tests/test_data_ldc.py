"""Miniature LDC trees (SWB-1 + MS98, Fisher, Hub5'00) -> manifests: speakers, durations, splits, errors."""
import os
import sys

import numpy as np
import pytest
from ldc_tree import build_eval2000_tree, build_fisher_tree, build_swbd_tree, install_sph2pipe_standin, write_sph

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
from asr_bl.data.sphere import SphereDecoderError, read_sphere_header

SR = 8000


@pytest.fixture()
def sph2pipe_on_path(tmp_path, monkeypatch):
    """sph2pipe is not installed here: put the package's stand-in on PATH."""
    script = install_sph2pipe_standin(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return script


@pytest.fixture()
def swbd_tree(tmp_path):
    """LDC97S62/swb1_d1/data/sw0NNNN.sph (shorten) + swb_ms98_transcriptions/NN/NNNN/swNNNN{A,B}-ms98-a-trans.text."""
    return build_swbd_tree(tmp_path)


@pytest.fixture()
def fisher_tree(tmp_path):
    return build_fisher_tree(tmp_path)


@pytest.fixture()
def eval2000_tree(tmp_path):
    return build_eval2000_tree(tmp_path)


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
    assert [s.text for s in first] == ["hello mike here", "do you watch t v", "hi [laughter] i'm sarah",
                                       "[noise] zorblatt"]
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


def test_without_sph2pipe_desphere_decodes_into_a_flac_cache(swbd_tree, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(SphereDecoderError, match="'sph2pipe' asked for.*lhotse install-sph2pipe"):
        prepare_switchboard(*swbd_tree, sphere_decoder="sph2pipe")
    cache = tmp_path / "audio"
    recordings, sups = prepare_switchboard(*swbd_tree, audio_cache_dir=cache)  # auto: desphere
    assert sorted(p.name for p in cache.iterdir()) == ["sw02001.flac", "sw02005.flac"]
    rec = recordings["sw02005"]
    assert rec.sources[0].source == str(cache / "sw02005.flac") and rec.num_channels == 2
    assert rec.duration == pytest.approx(8.0)
    audio = rec.load_audio(channels=0, offset=2.0, duration=0.5)
    spectrum = np.abs(np.fft.rfft(audio[0]))
    assert np.argmax(spectrum) * SR / 4000 == pytest.approx(300, abs=4)  # side A's tone
    assert len(sups) == 14
    # A second run decodes nothing: the cached files (frames, channels, rate as in the header) are kept.
    mtimes = [p.stat().st_mtime_ns for p in sorted(cache.iterdir())]
    prepare_switchboard(*swbd_tree, audio_cache_dir=cache)
    assert [p.stat().st_mtime_ns for p in sorted(cache.iterdir())] == mtimes
    # Neither decoder: one error naming both fixes.
    monkeypatch.setitem(sys.modules, "desphere", None)
    with pytest.raises(SphereDecoderError, match="neither 'sph2pipe'.*desphere==0.1.1"):
        prepare_switchboard(*swbd_tree, audio_cache_dir=tmp_path / "audio2")


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
