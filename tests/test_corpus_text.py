"""Text normalisation, number spelling, lexicon and sentence pool of the synthetic corpus."""
import os

import numpy as np
import pytest

from asr_bl.corpus import channel
from asr_bl.corpus.text import (
    SentencePool,
    load_cmudict,
    normalize_text,
    source_sentences,
    spell_number,
    spell_ordinal,
    spell_year,
    write_lexicon,
)


@pytest.fixture(scope="module")
def lexicon():
    return load_cmudict()


def test_spell_numbers():
    assert spell_number(0) == "zero"
    assert spell_number(15) == "fifteen"
    assert spell_number(40) == "forty"
    assert spell_number(1234567) == "one million two hundred thirty four thousand five hundred sixty seven"
    assert spell_ordinal(37) == "thirty seventh"
    assert spell_ordinal(12) == "twelfth"
    assert spell_ordinal(20) == "twentieth"
    assert spell_year(1963) == "nineteen sixty three"
    assert spell_year(1905) == "nineteen oh five"
    assert spell_year(2005) == "two thousand five"


def test_normalize_text():
    assert normalize_text("Who was the 37th President?") == "who was the thirty seventh president"
    assert normalize_text("It's $5, 20% & more!") == "it's five dollars twenty percent and more"
    assert normalize_text("In 1963, 1,500 people came.") == (
        "in nineteen sixty three one thousand five hundred people came")
    assert normalize_text("Twenty-one 'quoted' words") == "twenty one quoted words"
    assert normalize_text("3.5 miles") == "three point five miles"
    assert normalize_text("...!?") == ""


def test_cmudict_stress_removed(lexicon):
    assert ("DH", "AH") in lexicon["the"] and ("DH", "IY") in lexicon["the"]
    assert all(not any(ch.isdigit() for p in pron for ch in p) for prons in lexicon.values() for pron in prons)
    for filler in ("uh", "um", "yeah", "okay", "huh"):
        assert filler in lexicon


def test_write_lexicon_rejects_oov(lexicon, tmp_path):
    path = str(tmp_path / "lexicon.txt")
    assert write_lexicon(["the", "cat"], lexicon, path) == 3  # the: 2 pronunciations
    assert open(path).read().splitlines()[0] == "cat K AE T"
    with pytest.raises(KeyError, match="qwzx"):
        write_lexicon(["qwzx"], lexicon, path)
    assert not os.path.exists(path + ".tmp")


def test_sources_are_in_vocabulary(lexicon):
    sentences, used = source_sentences(lexicon)
    assert len(sentences) > 1000 and used[0].startswith("chatterbot-corpus")
    assert len(set(sentences)) == len(sentences)
    assert all(w in lexicon for s in sentences for w in s.split())


def test_sentence_pool_distinct_and_deterministic(lexicon):
    sources, _ = source_sentences(lexicon)
    a = SentencePool(sources, 3000, seed=7)
    b = SentencePool(sources, 3000, seed=7)
    taken_a = [a.take() for _ in range(5000)]  # beyond the initial pool: generated on demand
    taken_b = [b.take() for _ in range(5000)]
    assert taken_a == taken_b
    assert len(set(taken_a)) == 5000
    assert all(w in lexicon for s in taken_a for w in s.split())
    assert [SentencePool(sources, 3000, seed=8).take() for _ in range(20)] != taken_a[:20]


def test_channel_helpers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32)
    y = channel.to_telephone_rate(x, 16000, speed=1.1)
    assert abs(len(y) - 16000 / 2 / 1.1) < 3
    rir = channel.synthetic_rir(rng, 0.4)
    assert len(rir) == 3200 and rir[0] == rir.max() and abs(np.sum(rir**2) - 1) < 1e-4
    for kind in ("white", "pink", "brown", "babble"):
        n = channel.colored_noise(rng, 12345, kind)
        assert n.shape == (12345,) and abs(np.sqrt(np.mean(n**2)) - 1) < 1e-3
    pink = channel.colored_noise(rng, 80000, "pink")
    spec = np.abs(np.fft.rfft(pink)) ** 2
    assert spec[100:1000].mean() > 5 * spec[20000:30000].mean()  # low frequencies dominate
    band = channel.band_limit(x[:8000] * 0 + rng.standard_normal(8000).astype(np.float32), 300, 3400)
    spec = np.abs(np.fft.rfft(band)) ** 2
    freqs = np.fft.rfftfreq(8000, 1 / 8000)
    assert spec[(freqs > 3700)].mean() < 0.05 * spec[(freqs > 1000) & (freqs < 2000)].mean()
    q = channel.mulaw_roundtrip(np.linspace(-1, 1, 1001).astype(np.float32))
    assert np.max(np.abs(q - np.linspace(-1, 1, 1001))) < 0.04


def test_debian_text_sources_parse(tmp_path):
    """fortunes / wordnet-base are optional; their parsers run on files in the Debian formats."""
    from asr_bl.corpus.text import _fortune_texts, _wordnet_texts

    fortunes = tmp_path / "fortunes"
    (fortunes / "off").mkdir(parents=True)
    (fortunes / "people").write_text(
        "A fool and his money\nare soon parted.\n%\nI never said most of the things I said.\n"
        "\t\t-- Yogi Berra\n%\n"
    )
    (fortunes / "people.dat").write_bytes(b"\x00\x02binary index")
    (fortunes / "off" / "rude").write_text("not read\n%\n")
    assert _fortune_texts(str(fortunes)) == [
        "A fool and his money are soon parted.", "I never said most of the things I said."
    ]
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    (wordnet / "data.verb").write_text(
        '01168468 34 v 01 eat 0 002 | take in solid food; "She was eating a banana"; "What did you eat?"\n'
    )
    assert _wordnet_texts(str(wordnet)) == ["She was eating a banana", "What did you eat?"]
    assert _fortune_texts(str(tmp_path / "missing")) == []
