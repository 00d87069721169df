"""Table-driven transcript normalisation: MS98 / Fisher training text and Hub5'00 references."""
import pytest

from asr_bl.data.normalize import TrainingTextConfig, normalize_hub5_reference, normalize_training_text

# (raw transcript in the corpus's own line format, expected normalised text)
TRAINING_TABLE = [
    # MS98 events and silence
    ("[silence]", ""),
    ("[laughter] yeah [noise] right [vocalized-noise]", "[laughter] yeah [noise] right [vocalized-noise]"),
    # word spoken while laughing
    ("[laughter-yes] i did", "yes i did"),
    # partial words: the spoken part keeps the hyphen on the cut side
    ("i th[ink]- think so", "i th- think so"),
    ("-[th]at's it", "-at's it"),
    ("[th]- the", "the"),
    # mispronunciation [said/meant] -> the intended word
    ("a [bocket/bucket] of water", "a bucket of water"),
    # _1 variant suffix
    ("i told them_1 so", "i told them so"),
    # acronyms in MS98 (underscored) and Fisher (dotted, spaced or joined) forms
    ("i worked at i_b_m", "i worked at i b m"),
    ("watching t. v. tonight", "watching t v tonight"),
    ("the i.b.m. p._c.", "the i b m p c"),
    # hesitations: spelling variants unified
    ("umm well hmm uh-hum", "um well hm uh-huh"),
    # Fisher events and (( )) uncertain words
    ("[laugh] (( i don't know )) [lipsmack] [mn]", "[laughter] i don't know [noise] [vocalized-noise]"),
    ("oh [sigh] okay", "oh [noise] okay"),
    # MS98 {coinage}
    ("that's {kinda} weird", "that's kinda weird"),
    # case and stray punctuation
    ("Yeah, Really?", "yeah really"),
    ("well -- i mean -", "well i mean"),
]


@pytest.mark.parametrize("raw,expected", TRAINING_TABLE)
def test_training_text_table(raw, expected):
    assert normalize_training_text(raw) == expected


def test_training_text_options():
    assert normalize_training_text("at i_b_m", TrainingTextConfig(acronyms="join")) == "at i_b_m"
    assert normalize_training_text("t. v.", TrainingTextConfig(acronyms="join")) == "t v"  # spaced: separate tokens
    assert normalize_training_text("[laughter] yes [noise]", TrainingTextConfig(keep_noise=False)) == "yes"
    assert normalize_training_text("umm", TrainingTextConfig(unify_hesitations=False)) == "umm"
    with pytest.raises(ValueError, match="acronyms"):
        TrainingTextConfig(acronyms="spell")


# Hub5'00 (LDC2002T43) reference lines, text after "A:"/"B:"
HUB5_TABLE = [
    (
        '<contraction e_form="[we=>we][\'re=>are]">we\'re starting the transition I you know told',
        "we're starting the transition i you know told",
    ),
    ("%um, <contraction e_form=\"[they=>they]['re=>are]\">they're not that thrilled about it, but %uh",
     "they're not that thrilled about it but"),
    ("what to you mean? {breath} oh, about <contraction e_form=\"[you=>you]['re=>are]\">you're leaving?",
     "what to you mean oh about you're leaving"),
    ("mhm", "mhm"),
    ("{laugh} ((i think)) so [distortion] yeah", "i think so yeah"),
    ("<b_aside> hold on <e_aside> sorry", "hold on sorry"),
    ("it was th- the best", "it was th- the best"),
    ("%hm. %ah", ""),
    ("so -- anyway", "so anyway"),
]


@pytest.mark.parametrize("raw,expected", HUB5_TABLE)
def test_hub5_reference_table(raw, expected):
    assert normalize_hub5_reference(raw) == expected


def test_hub5_keep_hesitations():
    assert normalize_hub5_reference("%um, yes %uh", keep_hesitations=True) == "um yes uh"
