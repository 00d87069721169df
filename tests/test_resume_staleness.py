"""Resumable GMM stages are redone, not skipped, when their inputs were remade with other content.

A retrained upstream model (or a rebuilt cuts manifest with the same name and cut ids) must not
leave a downstream stage's stale outputs in place behind a "skipping" message; an upstream step
redone with the same result (same content, new mtime) must not make them redo either.
"""
import importlib.util
import json
import os

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from asr_bl.bin.gmm import main

for _name in ("kaldi_hmm_gmm", "kaldifst"):  # GMM training needs the Kaldi bindings (CI has them)
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"{_name} is not installed (pip install -r requirements.txt)", allow_module_level=True)

SR = 8000
LEXICON = "hello HH AH L OW\nworld W ER L D\nhi HH AY\n"
TEXTS = ["hello world", "hi world", "world hello hi", "hello", "hi hello", "world"]


def write_cuts(tmp_path, path, seed: int) -> None:
    """Six one-utterance recordings: harmonic tones with a pitch per word, plus noise."""
    rng = np.random.default_rng(seed)
    cuts = []
    for i, text in enumerate(TEXTS):
        words = text.split()
        seg = int(0.45 * SR)
        pitch = {"hello": 150.0, "world": 230.0, "hi": 310.0}
        t = np.arange(seg) / SR
        audio = [0.01 * rng.standard_normal(int(0.2 * SR))]
        for w in words:
            audio.append(0.3 * np.sin(2 * np.pi * pitch[w] * t) + 0.01 * rng.standard_normal(seg))
        audio.append(0.01 * rng.standard_normal(int(0.2 * SR)))
        wav = tmp_path / f"{path.stem.split('.')[0]}_{seed}_{i}.wav"
        sf.write(str(wav), np.concatenate(audio), SR, subtype="PCM_16")
        rec = Recording.from_file(wav, recording_id=f"utt{i}")
        sup = SupervisionSegment(id=f"utt{i}", recording_id=rec.id, start=0.0, duration=rec.duration,
                                 channel=0, text=text)
        cuts.append(MonoCut(id=f"utt{i}", start=0.0, duration=rec.duration, channel=0, recording=rec,
                            supervisions=[sup]))
    CutSet.from_cuts(cuts).to_file(path)


@pytest.fixture()
def setup(tmp_path):
    (tmp_path / "lexicon.txt").write_text(LEXICON)
    lang = tmp_path / "lang"
    assert main(["prepare-lang", "--lexicon", str(tmp_path / "lexicon.txt"), "--out-dir", str(lang)]) == 0
    cuts = tmp_path / "cuts_train.jsonl.gz"
    write_cuts(tmp_path, cuts, seed=0)
    common = ["--cuts", str(cuts), "--lang", str(lang), "--num-jobs", "1", "--subset", "0"]
    return tmp_path, cuts, lang, common


def mono(common, out, gauss: str, *extra):
    # Six iterations: the Gaussians grow in the first one (the library's schedule is for 25).
    return main(["train-mono", *common, "--out-dir", str(out), "--num-iters", "6", "--max-iter-inc", "1",
                 "--realign-iters", "1,2,3,4,5", "--total-gauss", gauss, *extra])


def test_align_is_redone_after_the_model_is_retrained(setup, capsys):
    tmp_path, cuts, lang, common = setup
    exp = tmp_path / "exp"
    common_align = [a for a in common if a not in ("--subset", "0")]
    assert mono(common, exp / "mono", "40") == 0
    gauss_before = json.loads((exp / "mono" / "done.json").read_text())["summary"]["num_gauss"]
    assert main(["align", *common_align, "--model-dir", str(exp / "mono"), "--out-dir", str(exp / "ali")]) == 0
    capsys.readouterr()
    # Unchanged inputs: skipped.
    assert main(["align", *common_align, "--model-dir", str(exp / "mono"), "--out-dir", str(exp / "ali")]) == 0
    assert "skipping" in capsys.readouterr().out
    # The model is retrained with more Gaussians: the alignment stage must be redone.
    assert mono(common, exp / "mono", "60", "--force") == 0
    gauss = json.loads((exp / "mono" / "done.json").read_text())["summary"]["num_gauss"]
    capsys.readouterr()
    assert main(["align", *common_align, "--model-dir", str(exp / "mono"), "--out-dir", str(exp / "ali")]) == 0
    assert "skipping" not in capsys.readouterr().out
    done = json.loads((exp / "ali" / "done.json").read_text())
    assert str(exp / "mono" / "final.mdl") in done["inputs"]
    assert (exp / "ali" / "final.mdl").read_bytes() == (exp / "mono" / "final.mdl").read_bytes()
    assert gauss > gauss_before


def test_stage_is_redone_when_a_lang_file_changes(setup, capsys, caplog):
    tmp_path, cuts, lang, common = setup
    exp = tmp_path / "exp"
    lexicon = str(tmp_path / "lexicon.txt")
    assert mono(common, exp / "mono", "40") == 0
    capsys.readouterr()
    assert mono(common, exp / "mono", "40") == 0
    assert "train-mono: skipping" in capsys.readouterr().out
    # prepare-lang redone (--force) with the same lexicon: no lang file is rewritten ...
    mtimes = {p.name: p.stat().st_mtime_ns for p in lang.iterdir() if p.name != "done.json"}
    assert main(["prepare-lang", "--lexicon", lexicon, "--out-dir", str(lang), "--force"]) == 0
    assert "0 of" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in lang.iterdir() if p.name != "done.json"} == mtimes
    # ... and a lang file touched without a change of content is no reason to redo either.
    st = (lang / "phones.txt").stat()
    os.utime(lang / "phones.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert mono(common, exp / "mono", "40") == 0
    assert "train-mono: skipping" in capsys.readouterr().out
    # Another silence probability changes L.fst: the monophone stage is redone, saying why.
    assert main(["prepare-lang", "--lexicon", lexicon, "--out-dir", str(lang), "--sil-prob", "0.3"]) == 0
    with caplog.at_level("INFO", logger="asr_bl"):
        assert mono(common, exp / "mono", "40") == 0
    assert "skipping" not in capsys.readouterr().out
    assert any("redoing" in r.getMessage() and str(lang / "L.fst") in r.getMessage() for r in caplog.records)


def test_gmm_feature_cache_is_keyed_by_manifest_content(setup):
    """A rebuilt manifest with the same name and cut ids (new audio) gets fresh GMM features."""
    tmp_path, cuts, lang, common = setup
    exp = tmp_path / "exp"
    assert mono(common, exp / "mono", "40") == 0
    first = sorted((exp / "gmm_feats").glob("*.npz"))
    assert len(first) == 1
    write_cuts(tmp_path, cuts, seed=1)  # same name, same ids, other audio files
    assert mono(common, exp / "mono", "40", "--force") == 0
    caches = sorted((exp / "gmm_feats").glob("*.npz"))
    assert len(caches) == 2
    new = [p for p in caches if p not in first][0]
    with np.load(first[0]) as a, np.load(new) as b:
        assert sorted(a.files) == sorted(b.files)
        assert any(not np.array_equal(a[k], b[k]) for k in a.files)
