"""The embedded synthetic corpus, built for real at --size tiny (espeak-ng, flite, festival).

Two builds of the same seed are made: one through the library with 2 processes, one through the
CLI with 1 process, so "same seed = identical corpus" also covers order independence.
"""
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.qa import validate_recordings_and_supervisions

from asr_bl.corpus.build import PARTS, SIZES, build_corpus, plan_corpus
from asr_bl.corpus.engines import EngineMissingError, available_engines
from asr_bl.io import temp_name

ARPABET = set(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth_a"))
    summary = build_corpus(out, size="tiny", seed=0, num_jobs=2)
    return out, summary


@pytest.fixture(scope="module")
def corpus_again(tmp_path_factory):
    """The same seed again, through the CLI, with one process."""
    out = str(tmp_path_factory.mktemp("synth_b"))
    proc = subprocess.run(
        [sys.executable, "-m", "asr_bl.bin.make_corpus", "--out-dir", out, "--size", "tiny", "--seed", "0",
         "--num-jobs", "1"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| train |" in proc.stdout  # the CLI prints the summary table
    return out


def _load(out, part):
    recs = RecordingSet.from_file(os.path.join(out, f"synth_recordings_{part}.jsonl.gz")).to_eager()
    sups = SupervisionSet.from_file(os.path.join(out, f"synth_supervisions_{part}.jsonl.gz")).to_eager()
    return recs, sups


def test_engines_found_and_used(corpus):
    _, summary = corpus
    engines = available_engines()
    assert "espeak" in engines  # from PyPI: always there
    assert summary["engines"] == engines
    used = {k.split(":")[0] for counts in summary["speakers_by_engine"].values() for k in counts}
    assert used == set(engines), "every installed engine should voice some speaker"


def test_layout_and_manifests_validate(corpus):
    out, summary = corpus
    for name in ("lexicon.txt", "lm_text.txt", "SUMMARY.md", "summary.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert not os.path.exists(os.path.join(out, "tmp")), "scratch files must be removed"
    for part in PARTS:
        recs, sups = _load(out, part)
        assert len(recs) >= 1 and len(sups) >= 5, part
        validate_recordings_and_supervisions(recs, sups)
        assert {s.recording_id for s in sups} == set(recs.ids)
        assert summary["parts"][part]["utterances"] == len(sups)
        for kind in ("recordings", "supervisions"):
            link = os.path.join(out, "manifests", f"synth_{kind}_{part}.jsonl.gz")
            assert os.path.samefile(link, os.path.join(out, f"synth_{kind}_{part}.jsonl.gz"))
    summary_md = open(os.path.join(out, "SUMMARY.md")).read()
    assert "test_ch" in summary_md and "espeak" in summary_md


def test_audio_is_8khz_telephone_two_sides(corpus):
    out, _ = corpus
    recs, sups = _load(out, "train")
    for rec in recs:
        assert rec.sampling_rate == 8000 and rec.num_channels == 2
        info = sf.info(rec.sources[0].source)
        assert (info.samplerate, info.channels, info.frames) == (8000, 2, rec.num_samples)
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups)
    cuts = cuts.trim_to_supervisions(keep_overlapping=False).to_eager()
    louder_own_side = 0
    for cut in cuts:
        audio = cut.load_audio()
        assert audio.shape[0] == 1 and cut.sampling_rate == 8000  # each side is mono
        sup = cut.supervisions[0]
        rec = recs[cut.recording_id]
        both = rec.load_audio(offset=cut.start, duration=cut.duration)
        assert np.allclose(both[sup.channel], audio[0])
        own, other = np.sqrt(np.mean(both[sup.channel] ** 2)), np.sqrt(np.mean(both[1 - sup.channel] ** 2))
        louder_own_side += own > 2 * other
    # Speech sits on its speaker's channel (barge-ins and crosstalk may blur a few).
    assert louder_own_side >= 0.9 * len(cuts)
    # Telephone band: little energy below 250 Hz or above 3500 Hz.
    audio = recs[0].load_audio()[0]
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
    out_of_band = spectrum[(freqs < 250) | (freqs > 3500)].sum() / spectrum.sum()
    assert out_of_band < 0.02, out_of_band


def test_splits_share_no_sentence_and_lm_text_excludes_test(corpus):
    out, _ = corpus
    texts = {part: [s.text for s in _load(out, part)[1]] for part in PARTS}
    for part, t in texts.items():
        assert len(set(t)) == len(t), f"repeated sentence inside {part}"
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1:]:
            assert not set(texts[a]) & set(texts[b]), (a, b)
    lm = open(os.path.join(out, "lm_text.txt")).read().splitlines()
    assert set(texts["train"]) <= set(lm)
    for part in ("dev", "test_swb", "test_ch"):
        assert not set(texts[part]) & set(lm), part
    assert len(lm) > len(texts["train"])  # extra LM-only text beyond the transcripts
    for line in lm + texts["train"]:
        assert re.fullmatch(r"[a-z']+( [a-z']+)*", line), line


def test_speakers_seen_and_unseen(corpus):
    out, _ = corpus
    speakers = {part: {s.speaker for s in _load(out, part)[1]} for part in PARTS}
    assert speakers["test_swb"] <= speakers["train"]
    assert speakers["dev"] <= speakers["train"]
    assert speakers["test_ch"] and not speakers["test_ch"] & speakers["train"]
    # Unseen voices take their vocal-tract warps at the edges of the training range, not beyond.
    plan = json.load(open(os.path.join(out, "plan.json")))
    config = SIZES["tiny"]
    warps = {v["voice_id"]: v["warp"] for v in plan["voices"]}
    lo, hi = config.seen_warp
    assert all(lo <= warps[s] <= hi for s in speakers["train"])
    for s in speakers["test_ch"]:
        assert any(a <= warps[s] <= b for a, b in (config.unseen_warp_low, config.unseen_warp_high)), warps[s]
        assert not (config.unseen_warp_low[1] < warps[s] < config.unseen_warp_high[0])
    # Conversation sides are speakers: one speaker per (recording, channel).
    for part in PARTS:
        sides = {}
        for s in _load(out, part)[1]:
            assert sides.setdefault((s.recording_id, s.channel), s.speaker) == s.speaker


def test_every_word_in_lexicon(corpus):
    out, _ = corpus
    lexicon = {}
    for line in open(os.path.join(out, "lexicon.txt")):
        word, *phones = line.split()
        assert word == word.lower() and phones, line
        assert set(phones) <= ARPABET, line  # upper case, stress removed
        lexicon.setdefault(word, []).append(phones)
    words = {w for part in PARTS for s in _load(out, part)[1] for w in s.text.split()}
    words |= {w for line in open(os.path.join(out, "lm_text.txt")) for w in line.split()}
    assert words <= set(lexicon), sorted(words - set(lexicon))[:10]
    assert ["DH", "AH"] in lexicon["the"]
    # The LM text covers every lexicon word, so no test word is unrecognisable.
    lm_words = {w for line in open(os.path.join(out, "lm_text.txt")) for w in line.split()}
    assert set(lexicon) <= lm_words, sorted(set(lexicon) - lm_words)[:10]


def test_augmentation_and_conditions(corpus):
    """A share of the training utterances (only) is rendered through harsher conditions, and the
    summary states every part's voice and channel ranges."""
    out, _ = corpus
    share = SIZES["tiny"].train_augment.share
    for part in PARTS:
        flags = [s.custom["augmented"] for s in _load(out, part)[1]]
        if part == "train":
            assert 0 < sum(flags) < len(flags)
            assert abs(sum(flags) / len(flags) - share) < 0.25
        else:
            assert not any(flags), part
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["conditions"]["test_ch"]["channel"]["snr_db"] == list(SIZES["tiny"].ch_channel.snr_db)
    assert summary["conditions"]["train"]["augment"]["share"] == share
    md = open(os.path.join(out, "SUMMARY.md")).read()
    assert "| test_ch |" in md and "augmented utterances" in md


def _digest(out):
    """Everything that defines the corpus except absolute paths."""
    h = hashlib.sha256()
    for part in PARTS:
        recs, sups = _load(out, part)
        for rec in recs:
            h.update(rec.id.encode())
            with open(rec.sources[0].source, "rb") as f:
                h.update(f.read())
        for s in sups:
            h.update(json.dumps(s.to_dict(), sort_keys=True).encode())
    for name in ("lexicon.txt", "lm_text.txt"):
        with open(os.path.join(out, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def test_same_seed_identical_corpus(corpus, corpus_again):
    out, _ = corpus
    assert _digest(out) == _digest(corpus_again)


def test_other_seed_other_corpus():
    engines = available_engines()
    a, b = plan_corpus(SIZES["tiny"], 0, engines), plan_corpus(SIZES["tiny"], 1, engines)
    texts = lambda p: [t["text"] for c in p["conversations"] for t in c["turns"]]  # noqa: E731
    assert texts(a) != texts(b)
    assert a["voices"] != b["voices"]


def test_resume_after_interruption(corpus_again):
    out = corpus_again
    before = _digest(out)
    recs, _ = _load(out, "train")
    flac = recs[0].sources[0].source
    os.remove(flac)
    os.remove(flac[: -len(".flac")] + ".json")
    with open(temp_name(flac), "wb") as f:
        f.write(b"half-written")  # what a killed run leaves behind (asr_bl.io's temporary name)
    summary = build_corpus(out, size="tiny", seed=0, num_jobs=1)
    assert summary["build"]["conversations_rendered"] == 1
    assert summary["build"]["conversations_resumed"] == sum(p["conversations"] for p in summary["parts"].values()) - 1
    assert _digest(out) == before


def test_refuses_to_mix_settings(corpus_again):
    with pytest.raises(ValueError, match="different seed"):
        build_corpus(corpus_again, size="tiny", seed=5, num_jobs=1)


def test_changed_test_channel_renders_only_test_ch_again(corpus, tmp_path):
    """Recalibrating test_ch's channel keeps every other conversation's files as they are."""
    src, _ = corpus
    out = str(tmp_path / "synth")
    shutil.copytree(src, out, symlinks=True)
    tiny = SIZES["tiny"]
    config = dataclasses.replace(tiny, ch_channel=dataclasses.replace(tiny.ch_channel, snr_db=(30.0, 40.0)))
    stamps = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "audio", "*", "*"))}
    summary = build_corpus(out, size="tiny", seed=0, num_jobs=1, config=config)
    assert summary["build"]["conversations_rendered"] == summary["parts"]["test_ch"]["conversations"] > 0
    for path, stamp in stamps.items():
        redone = os.stat(path).st_mtime_ns != stamp
        assert redone == (os.sep + "test_ch" + os.sep in path), path
    snrs = [s.custom["snr_db"] for s in _load(out, "test_ch")[1]]
    assert min(snrs) >= 30.0
    for part in ("train", "dev", "test_swb"):  # the manifests name the copy's audio, the rest is equal
        (recs_a, sups_a), (recs_b, sups_b) = _load(src, part), _load(out, part)
        assert [(r.id, r.num_samples) for r in recs_a] == [(r.id, r.num_samples) for r in recs_b]
        assert [s.to_dict() for s in sups_a] == [s.to_dict() for s in sups_b]


def test_no_engine_is_a_clear_error():
    with pytest.raises(EngineMissingError, match="espeakng-loader"):
        plan_corpus(SIZES["tiny"], 0, engines={})


def test_only_espeak_still_builds_a_plan():
    plan = plan_corpus(SIZES["tiny"], 0, engines={"espeak": ["en-us"]})
    assert {v["engine"] for v in plan["voices"]} == {"espeak"}
    assert len(plan["voices"]) == SIZES["tiny"].num_train_speakers + SIZES["tiny"].num_unseen_speakers


def test_cli_help():
    proc = subprocess.run([sys.executable, "-m", "asr_bl.bin.make_corpus", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "--out-dir" in proc.stdout and "test_ch" in proc.stdout
