"""LM building: vocabulary mapping, floored unigrams for lexicon words, pruning to a target, perplexity
with OOVs counted apart, G.fst over words.txt, the CLI's skip-or-redo."""
import json
import math

import pytest

from asr_bl.decode.lm import LmConfig, build_lm, load_arpa, perplexity, read_vocabulary

TEXT = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat ran to the park",
    "the dog ran to the mat",
    "a dog sat on a log",
    "the cat and the dog ran",
    "zebra the cat",  # zebra is not in the vocabulary
] * 3
VOCAB = ["<unk>", "the", "cat", "sat", "on", "mat", "dog", "log", "a", "ran", "to", "park", "and",
         "apple", "banana"]  # apple, banana: lexicon words absent from the text


@pytest.fixture()
def words_txt(tmp_path):
    p = tmp_path / "words.txt"
    syms = ["<eps>"] + VOCAB + ["#0", "<s>", "</s>"]
    p.write_text("".join(f"{w} {i}\n" for i, w in enumerate(syms)))
    return p


@pytest.fixture()
def text(tmp_path):
    p = tmp_path / "lm_text.txt"
    p.write_text("\n".join(TEXT) + "\n")
    return p


def test_vocabulary_mapping_and_floored_unigrams(tmp_path, words_txt, text):
    s = build_lm(text, words_txt, tmp_path / "lm", LmConfig(order=3))
    assert read_vocabulary(words_txt) == VOCAB
    assert s["text"]["oov_tokens_mapped"] == 3  # the three "zebra"s became <unk>
    assert s["added_unigrams"] == 2
    lm = load_arpa(tmp_path / "lm" / "lm.arpa")
    uni = lm._ngrams[0][()]
    seen_min = min(p for w, p in uni.items() if w not in ("<s>", "apple", "banana"))
    assert uni["apple"] == pytest.approx(seen_min - 1.0) and uni["banana"] == pytest.approx(seen_min - 1.0)
    assert "zebra" not in uni and "<unk>" in uni
    assert s["ngrams"][1] == len(VOCAB) + 2  # + <s>, </s>
    assert (tmp_path / "lm" / "G.fst").stat().st_size > 0


def test_g_fst_has_every_word_and_backoff_symbol(tmp_path, words_txt, text):
    import kaldi_hmm_gmm  # noqa: F401  (import order, see asr_bl._kaldi)
    import kaldifst

    build_lm(text, words_txt, tmp_path / "lm", LmConfig(order=2))
    g = kaldifst.StdVectorFst.read(str(tmp_path / "lm" / "G.fst"))
    ids = {int(line.split()[1]): line.split()[0] for line in words_txt.read_text().splitlines()}
    labels = set()
    for s in range(g.num_states):
        it = kaldifst.ArcIterator(g, s)
        while not it.done:
            labels.add(it.value.ilabel)
            it.next()
    names = {ids[i] for i in labels if i}
    assert set(VOCAB) <= names and "#0" in names and "<s>" not in names


def test_pruning_reaches_the_target(tmp_path, words_txt, text):
    full = build_lm(text, words_txt, tmp_path / "full", LmConfig(order=3))
    target = full["ngrams_total"] - 15
    s = build_lm(text, words_txt, tmp_path / "pruned", LmConfig(order=3, target_ngrams=target))
    assert s["ngrams_total"] <= target < full["ngrams_total"]
    assert s["ngrams"][1] == full["ngrams"][1]  # unigrams are never pruned
    assert s["pruning"]["threshold"] > 0 and s["pruning"]["ladder"][-1]["ngrams"] <= target


def test_perplexity_counts_oovs_apart(tmp_path, words_txt, text):
    build_lm(text, words_txt, tmp_path / "lm", LmConfig(order=2))
    lm = load_arpa(tmp_path / "lm" / "lm.arpa")
    a = perplexity(lm, ["the cat sat on the mat"])
    b = perplexity(lm, ["the cat sat on the mat", "giraffe"])
    assert a["oovs"] == 0 and b["oovs"] == 1 and b["words"] == 7
    # hand computation: sum of log10 p over the 6 words + </s>, divided by 7 tokens
    lp = sum(lm.log_p_raw(ng) for ng in [("<s>", "the"), ("the", "cat"), ("cat", "sat"), ("sat", "on"),
                                         ("on", "the"), ("the", "mat"), ("mat", "</s>")])
    assert a["ppl"] == pytest.approx(10 ** (-lp / 7))
    # the OOV sentence adds only its </s> (history restarts after the OOV)
    assert b["logprob10"] == pytest.approx(lp + lm.log_p_raw(("</s>",)))
    assert math.isfinite(b["ppl"])


def test_cli_skips_when_unchanged_and_errors_name_the_file(tmp_path, words_txt, text, capsys, caplog):
    from asr_bl.bin.lm import main

    args = ["train", "--text", str(text), "--words", str(words_txt), "--out-dir", str(tmp_path / "lm"), "--order", "2"]
    assert main(args) == 0
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert "skipping" in caplog.text
    text.write_text("the cat sat\n" + text.read_text())  # changed content: redone
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(args) == 0
    assert "redoing" in caplog.text and "lm_text.txt" in caplog.text
    capsys.readouterr()
    assert main(["train", "--text", str(tmp_path / "nope.txt"), "--words", str(words_txt),
                 "--out-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asr_bl-lm: error:") and "nope.txt" in err and "Traceback" not in err
    assert main(["ppl", "--arpa", str(tmp_path / "lm" / "lm.arpa"), "--text", str(text)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["oovs"] == 3  # the "zebra"s
