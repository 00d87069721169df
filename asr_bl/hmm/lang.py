"""Lang preparation in the manner of Kaldi's ``utils/prepare_lang.sh``, written from scratch.

A *lang directory* holds everything the GMM-HMM and the decoder need to know about phones and
words, in Kaldi's file formats so that Kaldi tools could read it:

- ``phones.txt``   ``<eps> 0``, silence/noise phones, speech phones, then disambiguation symbols:
  ``#0`` (G's back-off), the lexicon's ``#1..#N`` and, when optional silence is on, ``#N+1``
  (follows the optional silence in L_disambig.fst, Kaldi's ``--sil-disambig``);
- ``words.txt``    ``<eps> 0``, the words, then ``#0``, ``<s>``, ``</s>``;
- ``silence_phones.txt`` / ``nonsilence_phones.txt`` / ``disambig.int``;
- ``lexicon.txt``  the lexicon actually used (with the non-speech entries added);
- ``topo``         the HMM topology in Kaldi's text format;
- ``L.fst`` / ``L_disambig.fst`` (OpenFst binary, via kaldifst) with optional silence between words.

Phone ids are 1-based and contiguous for real phones (``<eps>`` = 0), as Kaldi requires.
"""
import io
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from asr_bl._kaldi import import_kaldi
from asr_bl.io import write_if_changed
from asr_bl.validate import DataError, check_lexicon_words, reserved_word_reason

logger = logging.getLogger(__name__)

#: Non-speech phones: silence, spoken noise (OOV words), non-spoken noise, laughter.
DEFAULT_SILENCE_PHONES: Tuple[str, ...] = ("sil", "spn", "nsn", "lau")

#: Lexicon entries added for the non-speech phones when the lexicon lacks them.
DEFAULT_EXTRA_ENTRIES: Tuple[Tuple[str, str], ...] = (
    ("!sil", "sil"),
    ("<unk>", "spn"),
    ("[noise]", "nsn"),
    ("[laughter]", "lau"),
)


@dataclass
class LangConfig:
    """Options of :func:`prepare_lang`."""

    #: Phones that are not speech; the first one is the optional inter-word silence.
    silence_phones: Tuple[str, ...] = DEFAULT_SILENCE_PHONES
    #: Word that unknown (out-of-lexicon) words are mapped to.
    oov_word: str = "<unk>"
    #: Probability of an optional silence after each word in L.fst (Kaldi's default 0.5).
    sil_prob: float = 0.5
    #: Number of emitting states of the speech-phone HMMs (left-to-right).
    speech_states: int = 3
    #: Number of emitting states of the silence/noise-phone HMMs (Kaldi's ergodic-middle shape).
    silence_states: int = 5
    #: Kaldi's word-position-dependent phones (_B/_I/_E/_S); off by default.
    position_dependent_phones: bool = False


@dataclass
class Lang:
    """An in-memory lang directory."""

    phones: List[str]  # index = phone id; phones[0] == "<eps>"; ends with the #k symbols
    words: List[str]  # index = word id; words[0] == "<eps>"
    lexicon: List[Tuple[str, List[str]]]
    silence_phones: List[str]
    num_disambig: int  # the lexicon's #1..#K (K = num_disambig); #0 is G's back-off symbol
    config: LangConfig = field(default_factory=LangConfig)
    #: Whether phones end with one more symbol, #(K+1), put after the optional silence in
    #: L_disambig.fst (Kaldi's ``--sil-disambig``): otherwise "word + optional silence" and
    #: "word + a word pronounced sil" are the same phone string and L o G is not determinizable.
    silence_disambig: bool = False

    @property
    def silence_disambig_symbol(self) -> Optional[str]:
        """The ``#k`` after the optional silence in L_disambig.fst, or None."""
        return f"#{self.num_disambig + 1}" if self.silence_disambig else None

    @property
    def phone_to_id(self) -> Dict[str, int]:
        return {p: i for i, p in enumerate(self.phones)}

    @property
    def word_to_id(self) -> Dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @property
    def real_phone_ids(self) -> List[int]:
        """Ids of all phones that have an HMM (everything but ``<eps>`` and ``#k``)."""
        return [i for i, p in enumerate(self.phones) if i > 0 and not p.startswith("#")]

    @property
    def silence_phone_ids(self) -> List[int]:
        ids = self.phone_to_id
        return sorted(ids[p] for p in self._expand(self.silence_phones))

    @property
    def nonsilence_phone_ids(self) -> List[int]:
        sil = set(self.silence_phone_ids)
        return [i for i in self.real_phone_ids if i not in sil]

    @property
    def disambig_phone_ids(self) -> List[int]:
        return [i for i, p in enumerate(self.phones) if p.startswith("#")]

    @property
    def base_phones(self) -> List[str]:
        """Phone names without position suffixes, in phone-id order, each once."""
        seen: List[str] = []
        for i in self.real_phone_ids:
            base = base_phone(self.phones[i])
            if base not in seen:
                seen.append(base)
        return seen

    def _expand(self, names: Sequence[str]) -> List[str]:
        if not self.config.position_dependent_phones:
            return list(names)
        return [n + s for n in names for s in ("", "_B", "_I", "_E", "_S") if n + s in self.phone_to_id]

    def words_to_ids(self, words: Sequence[str]) -> List[int]:
        """Map words to ids, unknown words to the OOV word (Kaldi's ``sym2int.pl --map-oov``)."""
        w2i = self.word_to_id
        oov = w2i[self.config.oov_word]
        return [w2i.get(w, oov) for w in words]

    def topology_text(self) -> str:
        """The HMM topology in Kaldi's text format (see :func:`make_topology_text`)."""
        return make_topology_text(
            self.nonsilence_phone_ids,
            self.silence_phone_ids,
            self.config.speech_states,
            self.config.silence_states,
        )

    def lexicon_fst(self, with_disambig: bool = False):
        """L.fst (``with_disambig=False``) or L_disambig.fst as a kaldifst ``StdVectorFst``."""
        return make_lexicon_fst(self, with_disambig)


def base_phone(phone: str) -> str:
    """``AA_B`` -> ``AA`` (position suffix removed); other names unchanged."""
    for suffix in ("_B", "_I", "_E", "_S"):
        if phone.endswith(suffix):
            return phone[: -len(suffix)]
    return phone


def read_lexicon(path: Path) -> List[Tuple[str, List[str]]]:
    """Read a Kaldi ``lexicon.txt`` (``word PH1 PH2 ...``); an optional pronunciation probability
    after the word (lexiconp.txt) is dropped. Duplicate (word, pron) pairs are kept once.

    Raises :class:`asr_bl.validate.DataError` (a ``ValueError``) naming the file and line for text
    that is not UTF-8, a reserved word (``<eps>``, ``<s>``, ``</s>``, ``#...``: lexicons have no
    comment lines), a word without pronunciation, or no entries at all."""
    entries: List[Tuple[str, List[str]]] = []
    seen = set()
    try:
        lines = io.StringIO(Path(path).read_bytes().decode("utf-8"), newline=None)
    except UnicodeDecodeError as e:
        lineno = Path(path).read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start}); "
                        "convert the lexicon to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        word, pron = parts[0], parts[1:]
        reason = reserved_word_reason(word)
        if reason:
            raise DataError(f"{path}:{lineno}: {reason}; remove the line")
        if pron:
            try:
                float(pron[0])
                pron = pron[1:]
            except ValueError:
                pass
        if not pron:
            raise DataError(
                f"{path}:{lineno}: word {word!r} has no pronunciation; fix or remove the line"
            )
        key = (word, tuple(pron))
        if key not in seen:
            seen.add(key)
            entries.append((word, pron))
    if not entries:
        raise DataError(f"{path} holds no lexicon entries; expected lines 'word PH1 PH2 ...'")
    return entries


def read_msu_lexicon(path: Path) -> List[Tuple[str, List[str]]]:
    """Read the Switchboard (Mississippi State) dictionary ``sw-ms98-dict.text``.

    Lines are ``word ph1 ph2 ...`` after ``#`` comment lines; phones are lower-case and
    words are lower-cased here. The MSU phone set keeps its own names (upper-cased, to match the
    ARPAbet convention of the embedded corpus); its ``[silence]``/``[noise]``/``[laughter]``/
    ``[vocalized-noise]`` entries map to our sil/nsn/lau/spn.
    """
    special = {"[silence]": "sil", "[noise]": "nsn", "[laughter]": "lau", "[vocalized-noise]": "spn"}
    entries: List[Tuple[str, List[str]]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            word = parts[0].lower()
            if word in special:
                entries.append((word, [special[word]]))
                continue
            pron = [p.upper() for p in parts[1:]]
            if pron:
                entries.append((word, pron))
    return entries


def prepare_lang(
    lexicon: List[Tuple[str, List[str]]], config: Optional[LangConfig] = None
) -> Lang:
    """Build a :class:`Lang` from lexicon entries (see :func:`read_lexicon`).

    Non-speech entries of :data:`DEFAULT_EXTRA_ENTRIES` are added when their word is absent.
    Disambiguation symbols are added to pronunciations that are homophones or prefixes of others
    (Kaldi's ``add_lex_disambig.pl``), so that L_disambig.fst is determinizable.
    """
    config = config or LangConfig()
    entries = list(lexicon)
    check_lexicon_words(entries, "the lexicon")
    words_present = {w for w, _ in entries}
    for word, phone in DEFAULT_EXTRA_ENTRIES:
        if phone in config.silence_phones and word not in words_present:
            entries.append((word, [phone]))
    sil_set = set(config.silence_phones)
    speech = sorted({p for _, pron in entries for p in pron if p not in sil_set})
    bad = [p for p in speech if p.startswith("#") or p == "<eps>"]
    if bad:
        raise ValueError(f"lexicon uses reserved phone names {bad}")

    if config.position_dependent_phones:
        entries = [(w, _position_mark(pron, sil_set)) for w, pron in entries]
        speech = [p + s for p in speech for s in ("_B", "_E", "_I", "_S")]
        sil_names = [p + s for p in config.silence_phones for s in ("", "_B", "_E", "_I", "_S")]
    else:
        sil_names = list(config.silence_phones)

    num_disambig = _count_disambig(entries)
    silence_disambig = config.sil_prob > 0
    num_symbols = num_disambig + 1 + int(silence_disambig)
    phones = ["<eps>"] + sil_names + speech + [f"#{k}" for k in range(num_symbols)]
    words = ["<eps>"] + sorted({w for w, _ in entries}) + ["#0", "<s>", "</s>"]
    if config.oov_word not in words:
        raise ValueError(f"OOV word {config.oov_word!r} is not in the lexicon")
    return Lang(
        phones=phones,
        words=words,
        lexicon=entries,
        silence_phones=list(config.silence_phones),
        num_disambig=num_disambig,
        config=config,
        silence_disambig=silence_disambig,
    )


def _position_mark(pron: List[str], sil_set: set) -> List[str]:
    if len(pron) == 1:
        return [pron[0] + "_S"] if pron[0] not in sil_set else [pron[0]]
    return [pron[0] + "_B"] + [p + "_I" for p in pron[1:-1]] + [pron[-1] + "_E"]


def _disambig_assignment(entries: List[Tuple[str, List[str]]]) -> List[int]:
    """Per entry, the k of its ``#k`` disambiguation symbol (0 = none needed)."""
    prefixes = set()
    for _, pron in entries:
        for n in range(1, len(pron)):
            prefixes.add(tuple(pron[:n]))
    counts: Dict[Tuple[str, ...], int] = {}
    for _, pron in entries:
        counts[tuple(pron)] = counts.get(tuple(pron), 0) + 1
    next_k: Dict[Tuple[str, ...], int] = {}
    out = []
    for _, pron in entries:
        key = tuple(pron)
        if counts[key] > 1 or key in prefixes:
            next_k[key] = next_k.get(key, 0) + 1
            out.append(next_k[key])
        else:
            out.append(0)
    return out


def _count_disambig(entries: List[Tuple[str, List[str]]]) -> int:
    return max([0] + _disambig_assignment(entries))


def make_topology_text(
    speech_phones: Sequence[int],
    silence_phones: Sequence[int],
    speech_states: int = 3,
    silence_states: int = 5,
) -> str:
    """Kaldi text topology: left-to-right ``speech_states``-state HMMs (self-loop 0.75) for speech
    phones; for silence phones ``silence_states`` states whose first state may enter any of the
    middle states, middle states are fully connected among themselves and to the last state, and
    the last state exits (Kaldi's silence shape; with ``silence_states < 3`` it is left-to-right).
    """
    lines = ["<Topology>"]

    def entry(phones: Sequence[int], body: List[str]) -> None:
        lines.extend(["<TopologyEntry>", "<ForPhones>", " ".join(map(str, phones)), "</ForPhones>"])
        lines.extend(body)
        lines.append("</TopologyEntry>")

    def left_to_right(n: int) -> List[str]:
        return [
            f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>"
            for s in range(n)
        ] + [f"<State> {n} </State>"]

    if speech_phones:
        entry(speech_phones, left_to_right(speech_states))
    if silence_phones:
        n = silence_states
        if n < 3:
            entry(silence_phones, left_to_right(n))
        else:
            body = []
            first_targets = list(range(0, n - 1))
            p = 1.0 / len(first_targets)
            body.append(
                "<State> 0 <PdfClass> 0 "
                + " ".join(f"<Transition> {t} {p:.6g}" for t in first_targets)
                + " </State>"
            )
            middle_targets = list(range(1, n))
            p = 1.0 / len(middle_targets)
            for s in range(1, n - 1):
                body.append(
                    f"<State> {s} <PdfClass> {s} "
                    + " ".join(f"<Transition> {t} {p:.6g}" for t in middle_targets)
                    + " </State>"
                )
            body.append(
                f"<State> {n - 1} <PdfClass> {n - 1} <Transition> {n - 1} 0.75 "
                f"<Transition> {n} 0.25 </State>"
            )
            body.append(f"<State> {n} </State>")
            entry(silence_phones, body)
    lines.append("</Topology>")
    return "\n".join(lines) + "\n"


def make_lexicon_fst(lang: Lang, with_disambig: bool = False):
    """The lexicon transducer (phones in, words out) with optional silence between words.

    States: 0 start, 1 loop (final, a word may start), 2 after-silence. Start goes to the loop
    state with cost -log(1-p) or through silence with cost -log(p); each word ends either in the
    loop state (-log(1-p)) or before an optional silence (-log(p)). With ``with_disambig``, words
    carry their ``#k`` symbol, the optional silence is followed by the lang's silence
    disambiguation symbol (so that it differs from a word pronounced ``sil``) and the loop state
    has the ``#0:#0`` self-loop that G's back-off arcs need (Kaldi's L_disambig.fst).
    """
    _, kaldifst = import_kaldi()
    p2i, w2i = lang.phone_to_id, lang.word_to_id
    sil = p2i[lang.silence_phones[0]]
    p = lang.config.sil_prob
    sil_cost = -math.log(p) if p > 0 else None
    nosil_cost = -math.log(1.0 - p) if p < 1 else 0.0
    arcs: List[str] = []
    start, loop, sil_state = 0, 1, 2
    next_state = 3
    arcs.append(f"{start} {loop} 0 0 {nosil_cost}")
    if sil_cost is not None:
        arcs.append(f"{start} {sil_state} 0 0 {sil_cost}")
        if with_disambig and lang.silence_disambig_symbol is not None:
            after_sil = next_state
            next_state += 1
            arcs.append(f"{sil_state} {after_sil} {sil} 0 0")
            arcs.append(f"{after_sil} {loop} {p2i[lang.silence_disambig_symbol]} 0 0")
        else:
            arcs.append(f"{sil_state} {loop} {sil} 0 0")
    disambig = _disambig_assignment(lang.lexicon) if with_disambig else [0] * len(lang.lexicon)
    for (word, pron), k in zip(lang.lexicon, disambig):
        symbols = [p2i[ph] for ph in pron] + ([p2i[f"#{k}"]] if k > 0 else [])
        src = loop
        for j, sym in enumerate(symbols):
            olabel = w2i[word] if j == 0 else 0
            if j == len(symbols) - 1:
                arcs.append(f"{src} {loop} {sym} {olabel} {nosil_cost}")
                if sil_cost is not None:
                    arcs.append(f"{src} {sil_state} {sym} {olabel} {sil_cost}")
            else:
                arcs.append(f"{src} {next_state} {sym} {olabel} 0")
                src = next_state
                next_state += 1
    if with_disambig:
        arcs.append(f"{loop} {loop} {p2i['#0']} {w2i['#0']} 0")
    arcs.append(f"{loop} 0")
    fst = kaldifst.compile("\n".join(arcs), acceptor=False)
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def write_lang(lang: Lang, out_dir: Path) -> None:
    """Write the lang directory, each file atomically; a file whose content is already there is
    not rewritten (:func:`asr_bl.io.write_if_changed`), so redoing this with the same lexicon keeps
    every mtime and no later stage sees a changed input."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def put(name: str, text: str) -> None:
        write_if_changed(out_dir / name, text)

    put("phones.txt", "".join(f"{p} {i}\n" for i, p in enumerate(lang.phones)))
    put("words.txt", "".join(f"{w} {i}\n" for i, w in enumerate(lang.words)))
    put("lexicon.txt", "".join(f"{w} {' '.join(pr)}\n" for w, pr in lang.lexicon))
    put("silence_phones.txt", "".join(lang.phones[i] + "\n" for i in lang.silence_phone_ids))
    put("nonsilence_phones.txt", "".join(lang.phones[i] + "\n" for i in lang.nonsilence_phone_ids))
    put("disambig.int", "".join(f"{i}\n" for i in lang.disambig_phone_ids))
    put("oov.txt", lang.config.oov_word + "\n")
    put("topo", lang.topology_text())
    cfg = lang.config
    put(
        "lang_config.txt",
        f"silence_phones={','.join(cfg.silence_phones)}\noov_word={cfg.oov_word}\n"
        f"sil_prob={cfg.sil_prob}\nspeech_states={cfg.speech_states}\n"
        f"silence_states={cfg.silence_states}\n"
        f"position_dependent_phones={int(cfg.position_dependent_phones)}\n"
        f"silence_disambig={int(lang.silence_disambig)}\n",
    )
    for name, dis in (("L.fst", False), ("L_disambig.fst", True)):
        fst = lang.lexicon_fst(with_disambig=dis)
        with tempfile.TemporaryDirectory(dir=out_dir) as scratch:  # kaldifst writes only to a path
            fst.write(os.path.join(scratch, name))
            data = Path(scratch, name).read_bytes()
        write_if_changed(out_dir / name, data)


def load_lang(lang_dir: Path) -> Lang:
    """Read a lang directory written by :func:`write_lang`."""
    lang_dir = Path(lang_dir)
    for name in ("phones.txt", "words.txt", "lexicon.txt", "lang_config.txt"):
        if not (lang_dir / name).is_file():
            raise FileNotFoundError(
                f"{lang_dir / name} is missing; run 'asr_bl-gmm prepare-lang' to create {lang_dir}"
            )
    kv = dict(
        line.split("=", 1)
        for line in (lang_dir / "lang_config.txt").read_text().splitlines()
        if "=" in line
    )
    config = LangConfig(
        silence_phones=tuple(kv["silence_phones"].split(",")),
        oov_word=kv["oov_word"],
        sil_prob=float(kv["sil_prob"]),
        speech_states=int(kv["speech_states"]),
        silence_states=int(kv["silence_states"]),
        position_dependent_phones=bool(int(kv["position_dependent_phones"])),
    )

    def table(name: str) -> List[str]:
        rows = [line.split() for line in (lang_dir / name).read_text(encoding="utf-8").splitlines()]
        rows = [r for r in rows if r]
        out = [""] * len(rows)
        for sym, idx in rows:
            out[int(idx)] = sym
        return out

    phones = table("phones.txt")
    lexicon = read_lexicon(lang_dir / "lexicon.txt")
    # Lang dirs written before the silence disambiguation symbol existed lack the key: none then.
    silence_disambig = bool(int(kv.get("silence_disambig", "0")))
    return Lang(
        phones=phones,
        words=table("words.txt"),
        lexicon=lexicon,
        silence_phones=list(config.silence_phones),
        num_disambig=sum(1 for p in phones if p.startswith("#")) - 1 - int(silence_disambig),
        config=config,
        silence_disambig=silence_disambig,
    )
