"""The LDC branch's lexicon, LM texts, Hub5'00 STM/GLM and shorten audio, on the miniature LDC trees."""
import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from ldc_tree import GLM, MSU_DICT, build_eval2000_tree, build_ldc_trees, path_without_sph2pipe, tone_samples
from shorten import shorten_encode, write_shorten_sph

from asr_bl.data.ldc import LdcLayoutError, LdcPrepConfig, fix_hub5_stm_line, prepare_ldc
from asr_bl.data.normalize import TrainingTextConfig
from asr_bl.data.sphere import decode_sphere, is_compressed, read_sphere_header, sphere_to_wav_bytes
from asr_bl.data.swbd_dict import SwbdDictConfig, add_missing_words, swbd_lexicon
from asr_bl.hmm.lang import prepare_lang, read_lexicon
from asr_bl.scoring.score import score_ctm


def test_shorten_sphere_decodes_losslessly(tmp_path):
    samples = tone_samples(1.5, seed=3)
    samples[10] = [-32768, 32767]  # the extremes survive
    path = tmp_path / "x.sph"
    write_shorten_sph(path, samples)
    header = read_sphere_header(path)
    assert header["sample_coding"] == "pcm,embedded-shorten-v2.00" and is_compressed(header)
    assert path.stat().st_size < samples.nbytes + 1024  # really compressed
    decoded, rate = decode_sphere(path)
    assert rate == 8000 and np.array_equal(decoded, samples)
    # The sph2pipe stand-in's time range and channel, as lhotse calls it.
    wav, _ = sf.read(io.BytesIO(sphere_to_wav_bytes(path, 0.5, 1.0, channel=2)), dtype="int16")
    assert np.array_equal(wav, samples[4000:8000, 1])
    if shutil.which("ffmpeg") is None:
        return  # the independent decoder's check below needs ffmpeg (tools/setup_env.sh does not install it)
    header_wav = io.BytesIO()
    sf.write(header_wav, samples[:1], 8000, format="WAV", subtype="PCM_16")
    shn = tmp_path / "x.shn"
    shn.write_bytes(shorten_encode(samples, verbatim=header_wav.getvalue()[:44]))
    out = subprocess.run(["ffmpeg", "-v", "error", "-f", "shn", "-i", str(shn), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    assert np.array_equal(np.frombuffer(out, dtype="<i2").reshape(-1, 2)[: len(samples)], samples)


def _msu_entries():
    return [(line.split()[0], line.split()[1:]) for line in MSU_DICT.splitlines() if line and not line.startswith("#")]


def test_swbd_lexicon_has_kaldis_treatment():
    lexicon = swbd_lexicon(_msu_entries())
    entries = {(w, " ".join(p)) for w, p in lexicon}
    words = {w for w, _ in lexicon}
    # Word forms as the training text writes them.
    assert {("-y", "IY"), ("t-", "T"), ("wolmanized", "W OW L M AX N AY Z D"), ("them", "AX M"),
            ("them", "DH EH M"), ("calling", "K AO L IH NG")} <= entries
    # Mispronunciations, acronyms (spelled as letters by the normaliser) and the dictionary's own
    # non-speech entries are dropped; Kaldi's non-speech entries and the letter names are added.
    assert not words & {"[bocket/bucket]", "bocket", "i_b_m", "[silence]", "[laughter-calling]", "them_1"}
    assert {("!sil", "sil"), ("[vocalized-noise]", "spn"), ("[noise]", "nsn"), ("[laughter]", "lau"),
            ("<unk>", "spn"), ("b", "B IY"), ("m", "EH M"), ("i", "AY"), ("a", "AX"), ("a", "EY")} <= entries
    assert ("w", "D AH B AX L Y UW") in entries
    speech = {p for _, pron in lexicon for p in pron} - {"sil", "spn", "nsn", "lau"}
    assert all(p.isupper() for p in speech)
    assert lexicon == sorted(lexicon) and len(entries) == len(lexicon)
    # Joined acronyms keep their entry; the CMU phone set has no AX, EN, EL.
    joined = swbd_lexicon(_msu_entries(), SwbdDictConfig(text=TrainingTextConfig(acronyms="join")))
    assert ("i_b_m", ["AY", "B", "IY", "EH", "M"]) in joined and ("b", ["B", "IY"]) not in joined
    cmu = swbd_lexicon(_msu_entries(), SwbdDictConfig(phone_set="cmu"))
    assert ("about", ["AH", "B", "AW", "T"]) in cmu
    assert not {"AX", "EN", "EL"} & {p for _, pron in cmu for p in pron}
    # prepare-lang takes it: the four silence phones, the rest speech phones.
    lang = prepare_lang(lexicon)
    assert lang.silence_phones == ["sil", "spn", "nsn", "lau"] and "AX" in lang.phones


def test_missing_words_come_from_cmudict_or_their_parts():
    lexicon = swbd_lexicon(_msu_entries())
    extended, oov = add_missing_words(lexicon, {"hello": 2, "zorblatt": 3, "c_n_n": 1, "yeah": 5})
    prons = {}
    for w, p in extended:
        prons.setdefault(w, []).append(p)
    assert ["HH", "AH", "L", "OW"] in prons["hello"]  # CMUdict, stress removed
    assert prons["c_n_n"] == [["S", "IY", "EH", "N", "EH", "N"]]
    assert prons["yeah"] == [["Y", "AE"]]  # the MSU pronunciation is kept, CMUdict's not added
    assert dict(oov) == {"zorblatt": 3}


def test_prepare_ldc_writes_lexicon_lm_texts_and_scoring_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without_sph2pipe())  # shorten audio through desphere
    trees = build_ldc_trees(tmp_path / "ldc")
    data = tmp_path / "data"
    args = dict(output_dir=data / "manifests", swbd_audio_dir=trees.swbd_audio, swbd_transcripts_dir=trees.swbd_text,
                fisher_dir=trees.fisher, eval2000_dir=trees.eval2000, config=LdcPrepConfig(num_dev=3), data_dir=data,
                num_jobs=1)
    written = prepare_ldc(**args)
    names = {p.name for p in written}
    assert {"lexicon.txt", "lexicon_oov.txt", "lm_text.txt", "lm_dev.txt", "eval2000.stm", "eval2000.glm"} <= names
    assert (data / "manifests" / "audio" / "sw02001.flac").is_file()
    # The lexicon covers every training word but the one OOV, listed with its count.
    lexicon = read_lexicon(data / "lexicon.txt")
    words = {w for w, _ in lexicon}
    train_words = set((data / "lm_text.txt").read_text().split()) | set((data / "lm_dev.txt").read_text().split())
    assert train_words - words == {"zorblatt"}
    assert (data / "lexicon_oov.txt").read_text() == "2 zorblatt\n"
    assert {"hello", "sarah", "watch", "t", "v"} <= words
    # LM text: SWB minus dev, then Fisher, no duplicate cap; dev: the first 3 SWB utterances.
    lm = (data / "lm_text.txt").read_text().splitlines()
    dev = (data / "lm_dev.txt").read_text().splitlines()
    assert dev == ["hi um i'm calling about t-", "uh-huh", "i worked at i b m [noise]"]
    assert len(lm) == 14 - 3 + 8 and lm.count("uh-huh") == 3 and lm[-1] == "[noise] zorblatt"
    # Scoring files: the GLM as shipped, the STM with Kaldi's fixes, both read by the scorer.
    assert (data / "eval2000.glm").read_text() == GLM
    stm = (data / "eval2000.stm").read_text()
    assert "ASIDE" not in stm and "((" not in stm and " (I) THINK SO (%HESITATION)" in stm
    ctm = tmp_path / "hyp.ctm"
    hyp = [("A", 0.6, "they"), ("A", 1.0, "are"), ("A", 1.5, "here"), ("B", 2.5, "mhm"), ("A", 3.5, "think"),
           ("A", 4.0, "so"), ("A", 4.5, "[noise]")]
    ctm.write_text("".join(f"{rec} {side} {t:.2f} 0.30 {w}\n" for rec in ("en_4156", "sw_4390") for side, t, w in hyp))
    report = score_ctm(ctm, data / "eval2000.stm", tmp_path / "score", glm=data / "eval2000.glm", scorer="python",
                       subsets={"swb": "sw_", "callhome": "en_"})
    assert report.overall.errors == 0 and report.overall.ref_words > 0
    # A re-run skips and rewrites nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in written}
    assert prepare_ldc(**args) == written
    assert {p: p.stat().st_mtime_ns for p in written} == mtimes


def test_fix_hub5_stm_line():
    line = "sw_4390 A sw_4390_A 3.10 5.50 <O,sw,F,sw-F>  <B_ASIDE> ((I)) (( SEE )) ((YOU KNOW)) (%HESITATION) <E_ASIDE>"
    assert fix_hub5_stm_line(line) == "sw_4390 A sw_4390_A 3.10 5.50 <O,sw,F,sw-F> (I) SEE YOU KNOW (%HESITATION)"
    assert fix_hub5_stm_line(';; LABEL "O" "Overall"') == ';; LABEL "O" "Overall"'


def test_bad_ldc_input_is_named(tmp_path, monkeypatch, capsys):
    from asr_bl.bin.prepare import main

    monkeypatch.setenv("PATH", path_without_sph2pipe())
    trees = build_ldc_trees(tmp_path / "ldc")
    base = ["--swbd", str(trees.swbd_audio), "--swbd-text", str(trees.swbd_text), "--out-dir",
            str(tmp_path / "m"), "--data-dir", str(tmp_path / "d")]
    # The wrong corpus: Fisher's tree given as Switchboard's.
    wrong = ["--swbd", str(trees.fisher), "--swbd-text", str(trees.swbd_text), "--out-dir", str(tmp_path / "m")]
    assert main(wrong) == 2
    err = capsys.readouterr().err
    assert "LDC97S62" in err and "swb1_d1/data/sw02001.sph" in err
    # Missing STM, missing GLM, missing MSU dictionary: each named with its expected place; nothing written.
    build_eval2000_tree(tmp_path / "no_stm", stm=False)
    assert main(base + ["--eval2000", str(tmp_path / "no_stm" / "eval2000")]) == 2
    assert "hub5e00.english.000405.stm" in capsys.readouterr().err
    build_eval2000_tree(tmp_path / "no_glm", glm=False)
    assert main(base + ["--eval2000", str(tmp_path / "no_glm" / "eval2000")]) == 2
    err = capsys.readouterr().err
    assert "en20000405_hub5.glm" in err and "LDC2002T43/reference/en20000405_hub5.glm" in err
    (trees.swbd_text / "sw-ms98-dict.text").unlink()
    assert main(base) == 2
    assert "swb_ms98_transcriptions/sw-ms98-dict.text" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "d").exists()
    # A GLM the scorer cannot read: refused with its line.
    (trees.swbd_text / "sw-ms98-dict.text").write_text(MSU_DICT)
    glm = trees.eval2000 / "LDC2002T43" / "reference" / "en20000405_hub5.glm"
    glm.write_text(GLM + "I'M => I AM\n")
    assert main(base + ["--eval2000", str(trees.eval2000)]) == 2
    assert f"{glm}:15" in capsys.readouterr().err
    with pytest.raises(LdcLayoutError, match="hub5e00"):
        prepare_ldc(tmp_path / "m2", trees.swbd_audio, trees.swbd_text, eval2000_dir=tmp_path / "no_stm" / "eval2000",
                    data_dir=tmp_path / "d2")
