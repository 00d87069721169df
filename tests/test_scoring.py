"""Scoring: WER arithmetic, the filter and GLM tables, sclite agreement, bad inputs.

The agreement tests write real STM/CTM files with our writers from lhotse cuts of real 2-channel
WAV files and score them with NIST sclite (Debian ``sctk``) and with the Python scorer.
"""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from asr_bl.scoring import (
    ErrorCounts,
    GlmFormatError,
    HubFilter,
    TranscriptFormatError,
    WerReport,
    align_segment,
    apply_glm,
    best_setting,
    filter_tokens,
    find_sclite,
    parse_ref_text,
    project_glm,
    read_glm,
    read_stm,
    score_ctm,
    score_texts,
    side_channel,
    write_ctm,
    write_glm,
    write_stm,
)

SCLITE = find_sclite()
needs_sclite = pytest.mark.skipif(SCLITE is None, reason="NIST sclite (Debian package sctk) is not installed")


def counts(c):
    return (c.ref_words, c.sub, c.dele, c.ins, c.sentences, c.sentence_errors)


# ------------------------------------------------------------------------------ arithmetic
def test_error_counts_arithmetic():
    c = ErrorCounts(ref_words=10, sub=1, dele=2, ins=1, sentences=3, sentence_errors=2)
    assert c.errors == 4 and c.corr == 7
    assert c.wer == pytest.approx(40.0)
    assert c.ser == pytest.approx(100 * 2 / 3)
    total = c + ErrorCounts(ref_words=5, sub=0, dele=0, ins=2, sentences=1, sentence_errors=1)
    assert counts(total) == (15, 1, 2, 3, 4, 3)
    assert total.wer == pytest.approx(100 * 6 / 15)
    assert sum([c, c]).ref_words == 20
    assert ErrorCounts().wer == 0.0
    assert math.isinf(ErrorCounts(ref_words=0, ins=1).wer)
    assert "%WER 40.00 [ 4 / 10, 1 ins, 2 del, 1 sub ]" == c.short()


@pytest.mark.parametrize("ref,hyp,expected", [
    # (ref words, sub, del, ins), hand-computed
    ("a b c d", "a x c", (4, 1, 1, 0)),
    ("a b", "a b c d", (2, 0, 0, 2)),
    ("a b c", "", (3, 0, 3, 0)),
    ("", "x y", (0, 0, 0, 2)),
    ("a (uh) b", "a b", (3, 0, 0, 0)),           # optionally deletable: deleted = correct, still a ref word
    ("a (uh) b", "a uh b", (3, 0, 0, 0)),
    ("(th-) the", "the the", (2, 0, 0, 0)),     # fragment matches a word starting with its stem
    ("wa- b", "was b", (2, 0, 0, 0)),
    ("e { f / g h } g", "e g h g", (4, 0, 0, 0)),  # alternation: the matching path is taken
    ("e { f / g h } g", "e f g", (3, 0, 0, 0)),
    ("a { b / @ } c", "a c", (2, 0, 0, 0)),    # '@' = nothing, not a reference word
    # sclite's tie-breaking: 3 substitutions (cost 12) win over 2 deletions + 2 insertions (cost 12)
    ("a a b", "b c c", (3, 3, 0, 0)),
])
def test_align_hand_cases(ref, hyp, expected):
    r = align_segment(parse_ref_text(ref), hyp.split())
    assert (r.ref_words, r.sub, r.dele, r.ins) == expected, r.pairs


def test_tie_breaking_is_sclites_not_kaldialigns():
    """kaldialign's sclite_mode has sclite's costs but another tie order (why the aligner is ours);
    on random pairs the optimal cost always equals kaldialign's."""
    kaldialign = pytest.importorskip("kaldialign")
    e = kaldialign.edit_distance("a a b".split(), "b c c".split(), sclite_mode=True)
    assert (e["sub"], e["del"], e["ins"]) == (0, 2, 2)
    rng = np.random.default_rng(0)
    for _ in range(300):
        ref = list(rng.choice(list("abc"), size=rng.integers(0, 7)))
        hyp = list(rng.choice(list("abcd"), size=rng.integers(0, 7)))
        r = align_segment(parse_ref_text(" ".join(ref)), hyp)
        ali = kaldialign.align(ref, hyp, "*", sclite_mode=True)
        k_cost = sum(0 if x == y else (4 if "*" not in (x, y) else 3) for x, y in ali)
        assert 4 * r.sub + 3 * (r.dele + r.ins) == k_cost, (ref, hyp)


def test_best_setting_deterministic_ties():
    def rep(err, n=100):
        return WerReport(overall=ErrorCounts(ref_words=n, sub=err))

    reports = {(12, 0.5): rep(10), (10, 0.0): rep(9), (11, 0.0): rep(9), (9, 1.0): rep(11)}
    assert best_setting(reports) == (10, 0.0)  # tie with (11, 0.0): smallest key
    assert best_setting(dict(reversed(list(reports.items())))) == (10, 0.0)
    with pytest.raises(ValueError):
        best_setting({})


# ------------------------------------------------------------------------------ tables
def test_filter_table():
    hyp = "[noise] so uh i th- think <unk> -at um [laughter] yeah hmm %hesitation".split()
    assert filter_tokens(hyp, "hyp") == ["so", "i", "think", "yeah"]
    ref = "[noise] so uh i th- think [vocalized-noise] yeah".split()
    assert filter_tokens(ref, "ref") == ["so", "(uh)", "i", "(th-)", "think", "yeah"]
    # inside an alternation a filtered-away alternative becomes '@' (nothing)
    r = score_texts({"u": ["a"]}, {"u": "a { [noise] / x } %ah".split()})
    assert counts(r.overall) == (2, 0, 0, 0, 1, 0)
    keep = HubFilter(hesitations=frozenset(), partial_words=False)
    assert keep.hyp(["uh", "th-", "[noise]"]) == ["uh", "th-"]
    with pytest.raises(ValueError):
        filter_tokens(["a"], "both")


def test_glm_read_apply_and_write(tmp_path):
    path = tmp_path / "en_test.glm"
    path.write_text(
        ';; a GLM in the LDC en20000405_hub5.glm format\n'
        '* name "test"\n'
        "* case_sensitive = 'F'\n"
        "I'M => { I'M / I AM } / [ ] __ [ ]   ;; contraction\n"
        "ALRIGHT => { ALRIGHT / ALL RIGHT } / [ ] __ [ ]\n"
        "OK => OKAY / [ ] __ [ ]\n"
        "GONNA => { GONNA / GOING TO / @ } / [ ] __ [ ]\n"
    )
    glm = read_glm(path)
    assert len(glm.rules) == 4
    assert apply_glm("i'm ok alright".split(), glm, "ref") == \
        "{ i'm / i am } okay { alright / all right }".split()
    assert apply_glm("i'm ok alright".split(), glm, "hyp") == "i'm okay alright".split()
    assert apply_glm("gonna".split(), glm, "ref") == "{ gonna / going to / @ }".split()
    # a reference alternation lets either spelling be correct
    ref = parse_ref_text(" ".join(apply_glm("it's alright".split(), glm, "ref")))
    assert align_segment(ref, "it's all right".split()).sub == 0
    # the project GLM: every spelling maps to the alternation of all of them, round trip on disk
    pg = project_glm()
    assert apply_glm("all right".split(), pg, "ref") == "{ alright / all right }".split()
    assert apply_glm("o k".split(), pg, "ref") == "{ okay / ok / o k }".split()
    write_glm(pg, tmp_path / "project.glm")
    again = read_glm(tmp_path / "project.glm")
    assert [(r.lhs, r.alternatives) for r in again.rules] == [(r.lhs, r.alternatives) for r in pg.rules]


def test_glm_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.glm"
    path.write_text("OK => OKAY / [ ] __ [ ]\nTHIS IS NOT A RULE\n")
    with pytest.raises(GlmFormatError, match=r"bad\.glm:2"):
        read_glm(path)
    path.write_text("OK => OKAY / [ A ] __ [ ]\n")
    with pytest.raises(GlmFormatError, match=r"bad\.glm:1: only the context"):
        read_glm(path)


def test_side_channel():
    from lhotse import SupervisionSegment

    assert side_channel(0) == "A" and side_channel(1) == "B"
    assert side_channel(SupervisionSegment("s", "r", 0, 1, channel=1)) == "B"
    with pytest.raises(ValueError):
        side_channel(2)


# ------------------------------------------------------------------------------ a small real set
# Two conversations (SWB-like "sw_" and CallHome-like "en_"), two sides each; per supervision:
# (start, duration, reference text). The hypotheses below perturb them.
CONVERSATIONS = {
    "sw_4001": {
        0: [(0.5, 2.0, "uh i think it's alright you know"), (3.0, 1.5, "yeah [laughter] i do"),
            (6.0, 2.5, "we went to the beach last summer")],
        1: [(1.0, 2.0, "oh really"), (4.0, 2.0, "a a b"), (7.0, 1.8, "that sounds nice")],
    },
    "en_6001": {
        0: [(0.3, 2.2, "so how is the wea- weather there"), (3.5, 1.2, "okay")],
        1: [(0.8, 1.5, "it is cold"), (2.6, 2.0, "um we had snow all week"), (5.0, 1.0, "goodbye")],
    },
}
HYPS = {  # per (recording, channel, supervision index): hypothesis words
    ("sw_4001", 0, 0): "i think it's all right you no",       # GLM variant + substitution, hesitation dropped
    ("sw_4001", 0, 1): "yeah [noise] i do do",                # noise filtered, insertion
    ("sw_4001", 0, 2): "we went the beach last last summer",  # deletion + insertion
    ("sw_4001", 1, 0): "oh really um",                        # hesitation in hyp: not an insertion
    ("sw_4001", 1, 1): "b c c",                               # sclite's tie case
    ("sw_4001", 1, 2): "that sounds",
    ("en_6001", 0, 0): "so how is the weather weather there",  # fragment matches
    ("en_6001", 0, 1): "ok",                                    # GLM: okay / ok
    ("en_6001", 1, 0): "it is it is cold",
    ("en_6001", 1, 1): "we had no snow all weak",
    # ("en_6001", 1, 2) missing: all deletions
}


def _cuts(tmp_path):
    import soundfile as sf
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    from asr_bl.features.pipeline import utterance_cuts

    recs, sups = [], []
    for rec_id, sides in CONVERSATIONS.items():
        wav = tmp_path / f"{rec_id}.wav"
        sf.write(str(wav), np.zeros((8000 * 10, 2), dtype=np.float32), 8000)
        recs.append(Recording.from_file(wav, recording_id=rec_id))
        for ch, segs in sides.items():
            for k, (start, dur, text) in enumerate(segs):
                sups.append(SupervisionSegment(f"{rec_id}-{ch}-{k}", rec_id, start, dur, channel=ch, text=text,
                                               speaker=f"{rec_id}_{'AB'[ch]}"))
    return utterance_cuts(RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups))


def _ctm_entries(words_at=None):
    entries = []
    for (rec, ch, k), text in HYPS.items():
        start, dur, _ = CONVERSATIONS[rec][ch][k]
        words = text.split()
        step = dur / len(words)
        for i, w in enumerate(words):
            entries.append((rec, ch, start + i * step, step * 0.8, w, 0.9))
    # an insertion in the gap between two segments: sclite gives it to the next segment
    entries.append(("sw_4001", 0, 2.7, 0.1, "hmm-mm"))
    return entries


def _write_set(tmp_path):
    cuts = _cuts(tmp_path)
    stm, ctm = tmp_path / "ref.stm", tmp_path / "hyp.ctm"
    assert write_stm(cuts, stm) == sum(len(s) for c in CONVERSATIONS.values() for s in c.values())
    write_ctm(_ctm_entries(), ctm)
    return stm, ctm


def test_writers_recording_level(tmp_path):
    stm, ctm = _write_set(tmp_path)
    segs = read_stm(stm)
    first = [s for s in segs if s.recording == "sw_4001" and s.side == "A"][0]
    assert (first.start, first.end, first.speaker) == (0.5, 2.5, "sw_4001_A")
    assert first.text == "(uh) i think it's alright you know"
    assert [s for s in segs if s.recording == "en_6001" and s.side == "A"][0].text.startswith("so how is the (wea-)")
    assert {s.side for s in segs} == {"A", "B"}
    lines = ctm.read_text().splitlines()
    assert lines[0].split()[:2] == ["sw_4001", "A"] and len(lines[0].split()) == 6


SUBSETS = {"swb": "sw_", "callhome": "en_"}


@needs_sclite
def test_sclite_and_python_agree(tmp_path):
    stm, ctm = _write_set(tmp_path)
    glm = project_glm()
    vocab = {w for c in CONVERSATIONS.values() for s in c.values() for _, _, t in s for w in t.split()} - {"goodbye"}
    sc = score_ctm(ctm, stm, tmp_path / "sclite", glm=glm, scorer="sclite", subsets=SUBSETS, vocab=vocab)
    py = score_ctm(ctm, stm, tmp_path / "python", glm=glm, scorer="python", subsets=SUBSETS, vocab=vocab)
    assert (sc.scorer, py.scorer) == ("sclite", "python")
    assert counts(sc.overall) == counts(py.overall)
    assert {k: counts(v) for k, v in sc.subsets.items()} == {k: counts(v) for k, v in py.subsets.items()}
    assert {k: counts(v) for k, v in sc.speakers.items()} == {k: counts(v) for k, v in py.speakers.items()}
    assert sc.oov_ref_words == py.oov_ref_words == 1
    assert set(sc.subsets) == {"swb", "callhome"} and len(sc.speakers) == 4
    assert sc.subsets["swb"] + sc.subsets["callhome"] == sc.overall
    for ext in ("sys", "dtl", "pra", "raw"):
        assert (tmp_path / "sclite" / f"hyp.ctm.filt.{ext}").is_file()
    assert json.loads((tmp_path / "sclite" / "wer.json").read_text())["overall"]["ref_words"] == sc.overall.ref_words
    # sclite's own per-segment line for the tie case: three substitutions
    pra = (tmp_path / "sclite" / "hyp.ctm.filt.pra").read_text()
    assert "REF:  A A B" in pra.upper() and "Scores: (#C #S #D #I) 0 3 0 0" in pra
    # the missing hypothesis segment is three deletions, not dropped
    assert sc.speakers["en_6001_b"].dele >= 1
    assert sc.overall.sentences == 11


@needs_sclite
def test_sclite_and_python_agree_random_perturbations(tmp_path):
    """Random substitutions/deletions/insertions with a tiny vocabulary (many tied paths) and
    words near segment boundaries (the midpoint rule)."""
    rng = np.random.default_rng(7)
    from asr_bl.scoring.trans import StmSegment

    segs, entries = [], []
    for r in range(4):
        rec = f"sw_{r:04d}" if r % 2 else f"en_{r:04d}"
        for side in "AB":
            t = 0.0
            for _ in range(6):
                dur = round(float(rng.uniform(0.5, 2.5)), 2)
                words = list(rng.choice(["a", "b", "c", "uh", "th-"], size=rng.integers(0, 7)))
                segs.append(StmSegment(rec, side, f"{rec}_{side}", t, round(t + dur, 2), " ".join(words)))
                for _ in range(int(rng.integers(0, 8))):
                    st = round(float(rng.uniform(t - 0.2, t + dur)), 2)
                    entries.append((rec, side, max(st, 0.0), float(rng.choice([0.1, 0.2, 0.3])),
                                    str(rng.choice(["a", "b", "c", "d", "the"]))))
                t = round(t + dur + float(rng.uniform(0, 0.4)), 2)
    stm, ctm = tmp_path / "ref.stm", tmp_path / "hyp.ctm"
    write_stm((), stm, segments=segs, normalize=None)
    write_ctm(entries, ctm)
    sc = score_ctm(ctm, stm, tmp_path / "s", scorer="sclite", subsets=SUBSETS)
    py = score_ctm(ctm, stm, tmp_path / "p", scorer="python", subsets=SUBSETS)
    assert counts(sc.overall) == counts(py.overall)
    assert {k: counts(v) for k, v in sc.speakers.items()} == {k: counts(v) for k, v in py.speakers.items()}
    assert sc.overall.sub > 0 and sc.overall.dele > 0 and sc.overall.ins > 0


def _boundary_set(tmp_path):
    from asr_bl.scoring.trans import StmSegment

    segs = [StmSegment("sw_1", "A", "sw_1_A", 0.0, 0.93, "a b"),
            StmSegment("sw_1", "A", "sw_1_A", 2.0, 4.0, "IGNORE_TIME_SEGMENT_IN_SCORING"),
            StmSegment("sw_1", "A", "sw_1_A", 4.0, 6.0, "c d"),
            StmSegment("sw_1", "A", "sw_1_A", 6.0, 7.0, "e")]
    # 'b' at 0.88 + 0.10/2 = 0.93 in decimal: before the end 0.93 as sclite reads it (a C float,
    # 0.93000001), so it belongs to the first segment; 'x' falls in the ignored segment; 'z' has its
    # midpoint exactly at 6.0 and goes to the last segment.
    words = [("sw_1", "A", 0.10, 0.20, "a"), ("sw_1", "A", 0.88, 0.10, "b"), ("sw_1", "A", 2.50, 0.20, "x"),
             ("sw_1", "A", 4.50, 0.20, "c"), ("sw_1", "A", 5.99, 0.02, "z")]
    stm, ctm = tmp_path / "ref.stm", tmp_path / "hyp.ctm"
    write_stm((), stm, segments=segs)
    write_ctm(words, ctm)
    return stm, ctm


def test_midpoint_rule_and_ignored_segments(tmp_path):
    stm, ctm = _boundary_set(tmp_path)
    py = score_ctm(ctm, stm, tmp_path / "p", scorer="python")
    # a b | c * | e->z : 5 ref words, 1 deletion, 1 substitution; the ignored segment is not scored
    assert counts(py.overall) == (5, 1, 1, 0, 3, 2)


@needs_sclite
def test_midpoint_rule_and_ignored_segments_sclite(tmp_path):
    stm, ctm = _boundary_set(tmp_path)
    sc = score_ctm(ctm, stm, tmp_path / "s", scorer="sclite")
    assert counts(sc.overall) == (5, 1, 1, 0, 3, 2)


def test_score_texts_matches_ctm_python(tmp_path):
    stm, ctm = _write_set(tmp_path)
    glm = project_glm()
    py = score_ctm(ctm, stm, tmp_path / "p", glm=glm, scorer="python", subsets=SUBSETS)
    refs, hyps, spk = {}, {}, {}
    for rec, sides in CONVERSATIONS.items():
        for ch, segs in sides.items():
            for k, (_, _, text) in enumerate(segs):
                utt = f"{rec}-{ch}-{k}"
                refs[utt] = text.split()
                spk[utt] = f"{rec}_{'AB'[ch]}"
                if (rec, ch, k) in HYPS:
                    hyps[utt] = HYPS[(rec, ch, k)].split()
    hyps["sw_4001-0-1"] = ["hmm-mm"] + hyps["sw_4001-0-1"]  # the gap word went to this segment
    tx = score_texts(hyps, refs, speakers=spk, subsets=SUBSETS, glm=glm)
    assert counts(tx.overall) == counts(py.overall)
    assert {k: counts(v) for k, v in tx.subsets.items()} == {k: counts(v) for k, v in py.subsets.items()}
    with pytest.raises(KeyError, match="no reference"):
        score_texts({"nope": ["a"]}, refs)


# ------------------------------------------------------------------------------ bad inputs
def test_empty_ctm_is_refused(tmp_path):
    stm, _ = _write_set(tmp_path)
    empty = tmp_path / "empty.ctm"
    empty.write_text(";; nothing decoded\n")
    with pytest.raises(TranscriptFormatError, match=r"empty\.ctm: the CTM has no word lines"):
        score_ctm(empty, stm, tmp_path / "out", scorer="python")
    assert not (tmp_path / "out" / "wer.json").exists()


def test_ctm_recording_missing_from_stm(tmp_path):
    stm, ctm = _write_set(tmp_path)
    with open(ctm, "a") as f:
        f.write("sw_9999 A 0.10 0.20 hello\n")
    n = len(ctm.read_text().splitlines())
    with pytest.raises(TranscriptFormatError, match=rf"hyp\.ctm:{n}: recording 'sw_9999' side A is not in the STM"):
        score_ctm(ctm, stm, tmp_path / "out", scorer="auto")


@pytest.mark.parametrize("line,what", [
    ("sw_4001 A 0.10 hello", "5 or 6 fields"),
    ("sw_4001 A zero 0.20 hello", "start time 'zero' is not a number"),
    ("sw_4001 A 0.10 -0.20 hello", "negative duration"),
])
def test_malformed_ctm_line(tmp_path, line, what):
    stm, ctm = _write_set(tmp_path)
    text = ctm.read_text().splitlines()
    text.insert(3, line)
    ctm.write_text("\n".join(text) + "\n")
    with pytest.raises(TranscriptFormatError, match=rf"hyp\.ctm:4: .*{what}"):
        score_ctm(ctm, stm, tmp_path / "out", scorer="python")


@pytest.mark.parametrize("line,what", [
    ("sw_4001 A spk 1.0", "an STM line needs"),
    ("sw_4001 A spk 2.0 1.0 a b", "ends"),
    ("sw_4001 A spk 1.0 2.0 a { b / c", "unclosed alternation"),
])
def test_malformed_stm_line(tmp_path, line, what):
    stm, ctm = _write_set(tmp_path)
    with open(stm, "a") as f:
        f.write(line + "\n")
    n = len(stm.read_text().splitlines())
    with pytest.raises(TranscriptFormatError, match=rf"ref\.stm:{n}: .*{what}"):
        score_ctm(ctm, stm, tmp_path / "out", scorer="python")


def test_cli(tmp_path):
    stm, ctm = _write_set(tmp_path)
    cmd = [sys.executable, "-m", "asr_bl.bin.score"]
    ok = subprocess.run(cmd + ["--ctm", str(ctm), "--stm", str(stm), "--glm", "project", "--scorer", "python",
                               "--subset", "swb=sw_", "--subset", "callhome=en_", "--out-dir", str(tmp_path / "o")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("all: %WER") and "swb: %WER" in ok.stdout
    report = WerReport.from_json(json.loads((tmp_path / "o" / "wer.json").read_text()))
    assert report.scorer == "python" and set(report.subsets) == {"swb", "callhome"}
    (tmp_path / "bad.ctm").write_text("sw_4001 A 0.1 x\n")
    bad = subprocess.run(
        cmd + ["--ctm", str(tmp_path / "bad.ctm"), "--stm", str(stm), "--out-dir", str(tmp_path / "b")],
        capture_output=True, text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("asr_bl-score: error: ") and "bad.ctm:1" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    usage = subprocess.run(cmd + ["--ctm", str(ctm), "--out-dir", str(tmp_path / "u")], capture_output=True, text=True)
    assert usage.returncode == 2 and "needs both --ctm and --stm" in usage.stderr
    # text mode
    (tmp_path / "ref.txt").write_text("u1 a b c\nu2 d e\n")
    (tmp_path / "hyp.txt").write_text("u1 a x c\n")
    tm = subprocess.run(cmd + ["--hyp-text", str(tmp_path / "hyp.txt"), "--ref-text", str(tmp_path / "ref.txt"),
                               "--out-dir", str(tmp_path / "t")], capture_output=True, text=True)
    assert tm.returncode == 0, tm.stderr
    assert "%WER 60.00 [ 3 / 5, 0 ins, 2 del, 1 sub ]" in tm.stdout
