"""Transcript normalisation: SWB (MS98) / Fisher training text and Hub5'00 references.

Two separate functions, because the two uses differ:

* :func:`normalize_training_text` turns a Switchboard (ISIP MS98) or Fisher transcript into the word
  sequence the lexicon and the GMM alignment see: lower case, noise events mapped to three
  tokens the lexicon models with a garbage phone (``[laughter]``, ``[noise]``,
  ``[vocalized-noise]``), partial words kept as their spoken part with a trailing/leading hyphen,
  mispronunciations ``[said/meant]`` replaced by the intended word, ``_1`` variant suffixes dropped,
  ``[laughter-word]`` reduced to the word, acronyms made one canonical form, hesitation spellings
  unified.
* :func:`normalize_hub5_reference` turns a Hub5'00 (LDC2002T43) reference line into the words
  scored: contraction tags resolved to their surface form, ``%`` hesitations, ``{breath}``-style
  events, ``[distortion]``-style annotations and ``<b_aside>`` tags removed, ``(( ))`` brackets
  dropped with their words kept, punctuation stripped.

The conventions come from the corpora's documentation (MS98 transcription guidelines, the Fisher
transcription conventions, the Hub5'00 reference format); the tables in
``tests/test_data_normalize.py`` are examples in those formats.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

LAUGHTER = "[laughter]"
NOISE = "[noise]"
VOCALIZED_NOISE = "[vocalized-noise]"
NOISE_TOKENS = (LAUGHTER, NOISE, VOCALIZED_NOISE)

#: Bracketed non-speech events of MS98 and Fisher, mapped to the three noise tokens.
#: Fisher writes [laugh], [lipsmack], [sigh], [cough], [breath], [mn] (a hum); MS98 writes
#: [laughter], [noise], [vocalized-noise]; anything else bracketed without a slash is a noise.
EVENT_MAP: Dict[str, str] = {
    "laughter": LAUGHTER,
    "laugh": LAUGHTER,
    "noise": NOISE,
    "lipsmack": NOISE,
    "breath": NOISE,
    "sigh": NOISE,
    "cough": NOISE,
    "sneeze": NOISE,
    "click": NOISE,
    "static": NOISE,
    "background": NOISE,
    "vocalized-noise": VOCALIZED_NOISE,
    "mn": VOCALIZED_NOISE,
}

#: Spelling variants of hesitations and backchannels, mapped to one form each.
HESITATION_MAP: Dict[str, str] = {
    "umm": "um",
    "ummm": "um",
    "uhh": "uh",
    "uhm": "um",
    "hmm": "hm",
    "hmmm": "hm",
    "mmm": "mm",
    "mm-hm": "mhm",
    "mm-hmm": "mhm",
    "uh-hum": "uh-huh",
    "uh-hmm": "uh-huh",
    "um-hum": "uh-huh",
}

_MISPRONOUNCED = re.compile(r"^\[([^/\]]+)/([^\]]+)\]$")  # [said/meant]
_LAUGH_WORD = re.compile(r"^\[laughter-(.+)\]$")  # [laughter-word]: word said laughing
_PARTIAL_END = re.compile(r"^([^\[\]]*)\[[^\]]*\]-$")  # th[e]- : spoken "th", completion in []
_PARTIAL_START = re.compile(r"^-\[[^\]]*\]([^\[\]]*)$")  # -[th]at : spoken "at"
_EVENT = re.compile(r"^\[([a-z\-]+)\]$")
_SPELLED_LETTERS = re.compile(r"^(?:[a-z]\.)+$")  # i.b.m. or t.
_UNDERSCORED_LETTERS = re.compile(r"^[a-z](?:_[a-z])+$")  # i_b_m (MS98) or i._b._m.


@dataclass
class TrainingTextConfig:
    """Switches of :func:`normalize_training_text`.

    ``acronyms``: ``"letters"`` spells acronyms as single-letter words (``i b m``; every letter is in
    a lexicon), ``"join"`` keeps one token ``i_b_m``. ``keep_noise``: keep the noise tokens (the GMM
    aligns them to a garbage phone) or drop them. ``unify_hesitations`` applies
    :data:`HESITATION_MAP`.
    """

    acronyms: str = "letters"
    keep_noise: bool = True
    unify_hesitations: bool = True

    def __post_init__(self) -> None:
        if self.acronyms not in ("letters", "join"):
            raise ValueError(f"acronyms must be 'letters' or 'join', got {self.acronyms!r}")


def _acronym_letters(token: str) -> Optional[List[str]]:
    """The letters of an acronym written ``i.b.m.``, ``i._b._m.``, ``i_b_m`` or ``t.``; else None."""
    compact = token.replace("._", ".")
    if _SPELLED_LETTERS.match(compact):
        return [c for c in compact if c != "."]
    if _UNDERSCORED_LETTERS.match(token):
        return token.split("_")
    return None


def _normalize_training_token(token: str, config: TrainingTextConfig) -> List[str]:
    match = _LAUGH_WORD.match(token)
    if match:
        token = match.group(1)
    match = _MISPRONOUNCED.match(token)
    if match:
        token = match.group(2)
    match = _PARTIAL_END.match(token)
    if match:
        return [match.group(1) + "-"] if match.group(1) else []
    match = _PARTIAL_START.match(token)
    if match:
        return ["-" + match.group(1)] if match.group(1) else []
    match = _EVENT.match(token)
    if match:
        mapped = EVENT_MAP.get(match.group(1), NOISE)
        return [mapped] if config.keep_noise else []
    if token.startswith("{") and token.endswith("}"):  # MS98 {coinage} / {word}: keep the word
        token = token[1:-1]
    token = token.replace("[", "").replace("]", "")
    if token.endswith("_1"):
        token = token[:-2]
    letters = _acronym_letters(token)
    if letters is not None:
        return letters if config.acronyms == "letters" else ["_".join(letters)]
    token = token.strip(".,?!\"")
    if config.unify_hesitations:
        token = HESITATION_MAP.get(token, token)
    return [token] if _has_word_character(token) else []


def _has_word_character(token: str) -> bool:
    """False for empty tokens and stray punctuation such as ``-`` or ``--``."""
    return any(c.isalnum() for c in token)


def normalize_training_text(text: str, config: Optional[TrainingTextConfig] = None) -> str:
    """Normalise one SWB (MS98) or Fisher transcript segment; returns the words joined by spaces.

    Returns an empty string for segments without words (e.g. only ``[silence]``), which callers drop.
    """
    config = config if config is not None else TrainingTextConfig()
    # Fisher's (( )) marks hard-to-hear words: keep the words, drop the brackets.
    text = text.lower().replace("((", " ").replace("))", " ")
    words: List[str] = []
    for token in text.split():
        if token == "[silence]":
            continue
        words.extend(_normalize_training_token(token, config))
    return " ".join(words)


_CONTRACTION_TAG = re.compile(r"<contraction\s+e_form=\"[^\"]*\">", re.IGNORECASE)
_ANGLE_TAG = re.compile(r"<[^>]*>")
_CURLY = re.compile(r"\{[^}]*\}")
_SQUARE = re.compile(r"\[[^\]]*\]")
_REF_PUNCT = re.compile(r"[,.?!;:\"]")


def normalize_hub5_reference(text: str, keep_hesitations: bool = False) -> str:
    """Normalise one Hub5'00 reference segment to the scored words (lower case, space-joined).

    ``%uh``-style hesitations are removed (NIST scoring treats them as optionally deletable) unless
    ``keep_hesitations``, which keeps the word without ``%``. Partial words (``th-``) are kept.
    """
    text = _CONTRACTION_TAG.sub("", text)  # keep the surface form that follows the tag
    text = _ANGLE_TAG.sub(" ", text)  # </contraction>, <b_aside>, <e_aside>, ...
    text = _CURLY.sub(" ", text)  # {breath}, {laugh}, {lipsmack}
    text = _SQUARE.sub(" ", text)  # [distortion], [background], ...
    text = text.replace("((", " ").replace("))", " ")
    text = _REF_PUNCT.sub(" ", text.lower())
    words: List[str] = []
    for token in text.split():
        if token.startswith("%"):
            if keep_hesitations and len(token) > 1:
                words.append(token[1:])
            continue
        if _has_word_character(token):
            words.append(token)
    return " ".join(words)


__all__ = [
    "EVENT_MAP",
    "HESITATION_MAP",
    "LAUGHTER",
    "NOISE",
    "NOISE_TOKENS",
    "TrainingTextConfig",
    "VOCALIZED_NOISE",
    "normalize_hub5_reference",
    "normalize_training_text",
]
