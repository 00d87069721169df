"""Validation of the front half's inputs: manifests, audio, transcripts, lexicons and lang dirs.

Kaldi's ``validate_data_dir.sh`` / ``validate_lang.pl`` discipline, as library functions that each
stage calls on what it reads (and ``asr_bl-validate {data,lang} PATH`` for a user's own dirs):

* :func:`read_manifest` loads a lhotse manifest or says in one line what is wrong with the file
  (missing, zero bytes, truncated gzip, a line that is not JSON, duplicate ids, no items);
* :func:`cut_audio_problem` / :func:`check_recordings` / :func:`check_supervisions`: audio that
  cannot be read, a real sample rate or length that differs from the manifest, a segment outside
  its recording, an empty transcript;
* :func:`oov_stats`: the out-of-vocabulary rate of transcripts against a lexicon's words;
* :func:`check_lexicon_words` and :func:`validate_lang_dir`: reserved symbols, a lang dir's tables.

Bad input is a :class:`DataError` (a ``ValueError``) whose message is
``<file>: <what is wrong>; <how to fix>``; the console tools register it with ``run_tool`` and exit 2.
A :class:`Report` collects many problems (errors and counted warnings) before one decision.
"""
import gzip
import json
import logging
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from asr_bl.io import Pathlike

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIO_TOLERANCE_S",
    "DataError",
    "OovStats",
    "Problem",
    "RESERVED_WORDS",
    "Report",
    "check_lexicon_words",
    "check_recordings",
    "check_supervisions",
    "cut_audio_problem",
    "empty_text_ids",
    "oov_stats",
    "read_manifest",
    "validate_data_dir",
    "validate_lang_dir",
]

#: How far (seconds) a declared length may differ from the audio's real one, or a segment run past
#: its recording's end (lhotse's own default tolerance for duration mismatches).
AUDIO_TOLERANCE_S = 0.025

#: Words a lexicon must not contain: the lang dir adds them itself (``#k`` are disambiguation symbols).
RESERVED_WORDS: Tuple[str, ...] = ("<eps>", "<s>", "</s>")

#: How many offending items a one-line message names before "... and N more".
_SHOW = 5


class DataError(ValueError):
    """Bad input data (a corrupt file, unreadable audio, an invalid lexicon): one line naming the file
    and the fix. The console tools report it like a usage error (exit code 2)."""


@dataclass
class Problem:
    """One finding: the file, the item in it (an id, a word, ``line N``) and what is wrong."""

    path: str
    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.item}: {self.reason}"


@dataclass
class Report:
    """Errors, warnings (counted, listed) and statistics of one validation."""

    what: str
    errors: List[Problem] = field(default_factory=list)
    warnings: List[Problem] = field(default_factory=list)
    stats: Dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def extend(self, other: "Report") -> None:
        self.errors.extend(other.errors)
        self.warnings.extend(other.warnings)
        self.stats.update(other.stats)

    def lines(self) -> List[str]:
        out = [f"{self.what}: {'OK' if self.ok else 'FAILED'} ({len(self.errors)} errors, "
               f"{len(self.warnings)} warnings)"]
        out += [f"error: {p}" for p in self.errors]
        out += [f"warning: {p}" for p in self.warnings]
        out += [f"{k}: {json.dumps(v, sort_keys=True, default=str)}" for k, v in sorted(self.stats.items())]
        return out

    def raise_if_errors(self, fix: str) -> None:
        """A :class:`DataError` naming the first errors (and how many more), then ``fix``."""
        if self.errors:
            raise DataError(f"{summarize(self.errors)}; {fix}")


def summarize(problems: Sequence[Problem], show: int = _SHOW) -> str:
    """``"<p1>, <p2>, ... and N more"`` (one line)."""
    head = "; ".join(str(p) for p in problems[:show])
    more = len(problems) - show
    return head + (f" ... and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------- manifests

_KIND_CLASSES = {"recordings": "RecordingSet", "supervisions": "SupervisionSet", "cuts": "CutSet"}


def _read_jsonl(path: Path, fix: str) -> List[Dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    items: List[Dict[str, Any]] = []
    lineno = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError as e:
                    raise DataError(f"{path}:{lineno}: not valid JSON ({e}; a truncated file?); {fix}") from None
                if not isinstance(item, dict):
                    raise DataError(f"{path}:{lineno}: a manifest line must be a JSON object; {fix}")
                items.append(item)
    except DataError:
        raise
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or truncated after line {lineno} ({e}); {fix}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{lineno + 1}: not UTF-8 text ({e}); {fix}") from None
    return items


def read_manifest(path: Pathlike, kind: str, fix: str = "") -> Any:
    """The lhotse manifest at ``path`` (``kind``: recordings, supervisions or cuts), eager.

    Raises :class:`DataError` naming the file for: a missing file, zero bytes, a corrupt or
    truncated gzip, a line that is not a JSON object, no items at all, duplicate ids (named),
    items lhotse cannot read. ``fix`` ends the message (default: rerun the stage that wrote it).
    """
    import lhotse

    path = Path(path)
    fix = fix or "rerun the stage that writes it (with --force)"
    if kind not in _KIND_CLASSES:
        raise ValueError(f"kind must be one of {sorted(_KIND_CLASSES)}, not {kind!r}")
    if not path.is_file():
        raise DataError(f"{path}: {kind} manifest not found; {fix}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not a manifest; {fix}")
    items = _read_jsonl(path, fix)
    if not items:
        raise DataError(f"{path}: the manifest holds no {kind}; {fix}")
    counts = Counter(str(d.get("id")) for d in items)
    dups = sorted(k for k, n in counts.items() if n > 1)
    if dups:
        shown = ", ".join(f"{k!r} (x{counts[k]})" for k in dups[:_SHOW])
        more = f" and {len(dups) - _SHOW} more" if len(dups) > _SHOW else ""
        raise DataError(f"{path}: duplicate ids {shown}{more}; every {kind[:-1]} needs its own id: "
                        "fix the data preparation")
    cls = getattr(lhotse, _KIND_CLASSES[kind])
    try:
        manifest = cls.from_dicts(items)
        return manifest.to_eager() if hasattr(manifest, "to_eager") else manifest
    except Exception as e:  # noqa: BLE001 - any item lhotse cannot build is bad input in this file
        raise DataError(f"{path}: not a lhotse {kind} manifest ({type(e).__name__}: {e}); {fix}") from None


# -------------------------------------------------------------------------------------------- audio

def _audio_info(path: str) -> Tuple[int, int, int]:
    """``(sampling rate, frames, channels)`` from the file's header."""
    import soundfile as sf

    try:
        i = sf.info(path)
        return int(i.samplerate), int(i.frames), int(i.channels)
    except Exception as first:  # noqa: BLE001 - formats libsndfile does not read: lhotse's backends
        try:
            from lhotse.audio.backend import info

            i = info(path)
            return int(i.samplerate), int(i.frames), int(i.channels)
        except Exception:  # noqa: BLE001
            raise first from None


def recording_problem(recording: Any) -> Optional[str]:
    """Why ``recording``'s audio cannot be used as its manifest declares, or None.

    File sources are checked from their headers (exists, non-empty, readable, real sampling rate
    and length equal to the declared ones within :data:`AUDIO_TOLERANCE_S`, enough channels);
    other sources (a command such as sph2pipe, a URL, memory) are not opened here. A recording
    with transforms (speed perturbation, resampling) is checked for readability only.
    """
    for source in recording.sources:
        if source.type != "file":
            continue
        p = Path(source.source)
        if not p.is_file():
            return f"audio file {p} does not exist"
        if p.stat().st_size == 0:
            return f"audio file {p} is empty (0 bytes)"
        try:
            rate, frames, channels = _audio_info(str(p))
        except Exception as e:  # noqa: BLE001 - unreadable audio, whatever the reader's error type
            return f"audio file {p} is unreadable ({type(e).__name__}: {str(e).strip() or 'no detail'})"
        if getattr(recording, "transforms", None):  # speed perturbation, resampling: other rate and length
            continue
        if rate != recording.sampling_rate:
            return f"audio file {p} is sampled at {rate} Hz, the manifest says {recording.sampling_rate} Hz"
        if frames <= 0:
            return f"audio file {p} holds no samples"
        if len(recording.sources) == 1:
            declared = recording.num_samples
            if abs(frames - declared) > AUDIO_TOLERANCE_S * rate:
                return (f"audio file {p} holds {frames} samples ({frames / rate:.3f} s), the manifest says "
                        f"{declared} ({declared / rate:.3f} s)")
        want = len(source.channels)
        if channels < want:
            return f"audio file {p} has {channels} channels, the manifest says {want}"
    return None


def cut_audio_problem(cut: Any, cache: Optional[Dict[str, Optional[str]]] = None) -> Optional[str]:
    """Why ``cut``'s audio cannot be read as declared, or None: its recording's problem
    (:func:`recording_problem`, cached per recording id in ``cache``), or a cut outside its recording."""
    rec = getattr(cut, "recording", None)
    if rec is None:
        return None
    if cache is not None and rec.id in cache:
        problem = cache[rec.id]
    else:
        problem = recording_problem(rec)
        if cache is not None:
            cache[rec.id] = problem
    if problem:
        return problem
    if cut.start < -1e-9:
        return f"starts at {cut.start:.3f} s, before its recording"
    if cut.end > rec.duration + AUDIO_TOLERANCE_S:
        return f"ends at {cut.end:.3f} s, past the end of recording {rec.id} ({rec.duration:.3f} s)"
    channels = cut.channel if isinstance(cut.channel, (list, tuple)) else [cut.channel]
    missing = [c for c in channels if c not in rec.channel_ids]
    if missing:
        return f"channel {missing} is not in recording {rec.id} (channels {rec.channel_ids})"
    return None


def check_recordings(recordings: Iterable[Any], path: Pathlike) -> List[Problem]:
    """A :class:`Problem` for each recording whose audio is not what the manifest at ``path`` says."""
    out = []
    for rec in recordings:
        problem = recording_problem(rec)
        if problem:
            out.append(Problem(str(path), f"recording {rec.id}", problem))
    return out


def empty_text_ids(supervisions: Iterable[Any]) -> List[str]:
    """Ids of supervisions whose text is missing, empty or only whitespace."""
    return [s.id for s in supervisions if not (s.text or "").strip()]


def check_supervisions(supervisions: Iterable[Any], recordings: Any, path: Pathlike,
                       empty_text_is_error: bool = True, check_extent: bool = True) -> Report:
    """Supervisions against their recordings: known recording and channel, a positive duration,
    inside the recording (within :data:`AUDIO_TOLERANCE_S`), a non-empty text (an error, or a counted
    warning with ``empty_text_is_error=False``: test references may legitimately hold no words).
    ``check_extent=False`` leaves out the duration and inside-the-recording checks (a stage that checks
    them per cut with the audio)."""
    report = Report(str(path))
    rec_ids = set(recordings.ids)
    sups = list(supervisions)
    for s in sups:
        item = f"supervision {s.id}"
        if s.recording_id not in rec_ids:
            report.errors.append(Problem(str(path), item, f"recording {s.recording_id!r} is not in the recordings"))
            continue
        rec = recordings[s.recording_id]
        if check_extent and s.duration <= 0:
            report.errors.append(Problem(str(path), item, f"duration {s.duration} s is not positive"))
        elif check_extent and (s.start < -1e-9 or s.end > rec.duration + AUDIO_TOLERANCE_S):
            report.errors.append(Problem(str(path), item, f"[{s.start:.3f}, {s.end:.3f}] s is outside recording "
                                         f"{rec.id} ([0, {rec.duration:.3f}] s)"))
        channels = s.channel if isinstance(s.channel, (list, tuple)) else [s.channel]
        if any(c not in rec.channel_ids for c in channels):
            report.errors.append(Problem(str(path), item, f"channel {s.channel} is not in recording {rec.id} "
                                         f"(channels {rec.channel_ids})"))
    empty = empty_text_ids(sups)
    target = report.errors if empty_text_is_error else report.warnings
    target.extend(Problem(str(path), f"supervision {i}", "empty transcript") for i in empty)
    report.stats["supervisions"] = len(sups)
    report.stats["empty_texts"] = len(empty)
    return report


# ------------------------------------------------------------------------------------- transcripts

@dataclass
class OovStats:
    """Out-of-vocabulary counts of transcripts against a word list."""

    tokens: int
    oov_tokens: int
    utterances: int
    #: Utterances all of whose words are OOV (e.g. an upper-case transcript against a lower-case lexicon).
    all_oov_utterances: List[str]
    top_oov: List[Tuple[str, int]]

    @property
    def rate(self) -> float:
        return self.oov_tokens / self.tokens if self.tokens else 0.0

    def summary(self) -> Dict[str, Any]:
        return {"tokens": self.tokens, "oov_tokens": self.oov_tokens, "oov_rate": round(self.rate, 6),
                "utterances": self.utterances, "all_oov_utterances": len(self.all_oov_utterances),
                "top_oov": [list(x) for x in self.top_oov]}

    def line(self) -> str:
        top = ", ".join(f"{w} ({n})" for w, n in self.top_oov[:_SHOW]) or "none"
        return (f"OOV rate {100 * self.rate:.2f}% ({self.oov_tokens} of {self.tokens} words; "
                f"{len(self.all_oov_utterances)} of {self.utterances} utterances all OOV); most frequent: {top}")


def oov_stats(texts: Mapping[str, str], words: Set[str], top: int = 20) -> OovStats:
    """OOV counts of ``{utterance id: text}`` (whitespace-split words) against the vocabulary ``words``."""
    counts: Counter = Counter()
    tokens = 0
    all_oov = []
    for uid, text in texts.items():
        ws = (text or "").split()
        tokens += len(ws)
        oov = [w for w in ws if w not in words]
        counts.update(oov)
        if ws and len(oov) == len(ws):
            all_oov.append(uid)
    return OovStats(tokens=tokens, oov_tokens=sum(counts.values()), utterances=len(texts),
                    all_oov_utterances=all_oov, top_oov=counts.most_common(top))


# ---------------------------------------------------------------------------------- lexicon / lang

def reserved_word_reason(word: str) -> Optional[str]:
    """Why ``word`` may not be a lexicon word, or None."""
    if word in RESERVED_WORDS:
        return f"{word!r} is reserved (the lang dir adds it itself)"
    if word.startswith("#"):
        return (f"{word!r}: words starting with '#' are reserved for disambiguation symbols "
                "(lexicons have no comment lines)")
    return None


def check_lexicon_words(entries: Iterable[Tuple[str, Sequence[str]]], path: Pathlike) -> None:
    """:class:`DataError` for reserved words (:data:`RESERVED_WORDS`, ``#...``) among lexicon entries."""
    bad = [(w, r) for w, r in ((w, reserved_word_reason(w)) for w, _ in entries) if r]
    if bad:
        raise DataError(f"{path}: {'; '.join(r for _, r in bad[:_SHOW])}; remove those lines from the lexicon")


def _read_table(path: Path, report: Report) -> Dict[str, int]:
    table: Dict[str, int] = {}
    ids: Dict[int, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        report.errors.append(Problem(str(path), "file", f"not UTF-8 ({e})"))
        return table
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            report.errors.append(Problem(str(path), f"line {n}", f"expected 'symbol id', got {line!r}"))
            continue
        sym, i = parts[0], int(parts[1])
        if sym in table:
            report.errors.append(Problem(str(path), f"line {n}", f"symbol {sym!r} appears twice"))
        if i in ids:
            report.errors.append(Problem(str(path), f"line {n}", f"id {i} is given to {ids[i]!r} and {sym!r}"))
        table.setdefault(sym, i)
        ids.setdefault(i, sym)
    if ids and sorted(ids) != list(range(len(ids))):
        report.errors.append(Problem(str(path), "ids", f"not contiguous from 0 (max {max(ids)}, {len(ids)} symbols)"))
    if table.get("<eps>") != 0:
        report.errors.append(Problem(str(path), "<eps>", "must be the symbol of id 0"))
    return table


def validate_lang_dir(lang_dir: Pathlike) -> Report:
    """Kaldi's ``validate_lang.pl`` for a lang dir written by :func:`asr_bl.hmm.lang.write_lang`.

    Checks: every file present and non-empty; phones.txt / words.txt well-formed (``sym id``,
    unique symbols and ids, contiguous from ``<eps> 0``); words.txt has ``#0 <s> </s>`` and the OOV
    word and no other reserved word; silence and non-silence phones partition the real phones;
    disambig.int is exactly the ``#k`` phones; every lexicon word and phone is in the tables; the
    topology covers every real phone.
    """
    d = Path(lang_dir)
    report = Report(f"lang {d}")
    if not d.is_dir():
        report.errors.append(Problem(str(d), "directory", "does not exist"))
        return report
    needed = ("phones.txt", "words.txt", "lexicon.txt", "lang_config.txt", "silence_phones.txt",
              "nonsilence_phones.txt", "disambig.int", "oov.txt", "topo", "L.fst", "L_disambig.fst")
    for name in needed:
        p = d / name
        if not p.is_file():
            report.errors.append(Problem(str(p), "file", "missing"))
        elif p.stat().st_size == 0 and name != "nonsilence_phones.txt":
            report.errors.append(Problem(str(p), "file", "empty (0 bytes)"))
    if report.errors:
        return report
    phones = _read_table(d / "phones.txt", report)
    words = _read_table(d / "words.txt", report)
    if not report.ok:
        return report

    def names(name: str) -> List[str]:
        return [ln.strip() for ln in (d / name).read_text(encoding="utf-8").splitlines() if ln.strip()]

    for w in ("#0", "<s>", "</s>"):
        if w not in words:
            report.errors.append(Problem(str(d / "words.txt"), w, "missing"))
    real_words = [w for w in words if w not in ("<eps>", "#0", "<s>", "</s>")]
    for w in real_words:
        reason = reserved_word_reason(w)
        if reason:
            report.errors.append(Problem(str(d / "words.txt"), w, reason))
    oov = names("oov.txt")
    if len(oov) != 1 or oov[0] not in words:
        report.errors.append(Problem(str(d / "oov.txt"), "oov", f"{oov} is not one word of words.txt"))
    real = {p for p in phones if p != "<eps>" and not p.startswith("#")}
    sil, nonsil = names("silence_phones.txt"), names("nonsilence_phones.txt")
    for name, group in (("silence_phones.txt", sil), ("nonsilence_phones.txt", nonsil)):
        for p in group:
            if p not in real:
                report.errors.append(Problem(str(d / name), p, "not a phone of phones.txt"))
    both = set(sil) & set(nonsil)
    if both:
        report.errors.append(Problem(str(d / "silence_phones.txt"), "phones",
                                     f"{sorted(both)} are also in nonsilence_phones.txt"))
    uncovered = real - set(sil) - set(nonsil)
    if uncovered:
        report.errors.append(Problem(str(d / "phones.txt"), "phones",
                                     f"{sorted(uncovered)} are neither silence nor non-silence phones"))
    disambig = {int(x) for x in names("disambig.int") if x.lstrip("-").isdigit()}
    expected = {i for p, i in phones.items() if p.startswith("#")}
    if disambig != expected:
        report.errors.append(Problem(str(d / "disambig.int"), "ids", "is not the set of #k phones of phones.txt"))
    n_entries = 0
    for n, line in enumerate((d / "lexicon.txt").read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        n_entries += 1
        if parts[0] not in words:
            report.errors.append(Problem(str(d / "lexicon.txt"), f"line {n}", f"word {parts[0]!r} not in words.txt"))
        missing = [p for p in parts[1:] if p not in real]
        if missing:
            report.errors.append(Problem(str(d / "lexicon.txt"), f"line {n}", f"phones {missing} not in phones.txt"))
    topo_ids: Set[int] = set()
    lines = (d / "topo").read_text(encoding="utf-8").split()
    for i, tok in enumerate(lines):
        if tok == "<ForPhones>":
            j = i + 1
            while j < len(lines) and lines[j] != "</ForPhones>":
                topo_ids.add(int(lines[j]))
                j += 1
    real_ids = {phones[p] for p in real}
    if topo_ids != real_ids:
        report.errors.append(Problem(str(d / "topo"), "phones",
                                     f"covers {len(topo_ids)} phone ids, phones.txt has {len(real_ids)} real phones"))
    report.stats.update({"phones": len(real), "words": len(real_words), "prons": n_entries})
    return report


# -------------------------------------------------------------------------------------- data dirs

def validate_data_dir(data_dir: Pathlike, corpus: Optional[str] = None, words: Optional[Set[str]] = None,
                      max_oov_rate: Optional[float] = None, check_audio: bool = True) -> Report:
    """Validate every manifest of ``data_dir`` (``{corpus}_{kind}_{part}.jsonl.gz``; all corpora
    when ``corpus`` is None): each loads (:func:`read_manifest`); recordings' audio as declared
    (``check_audio``); supervisions inside their recordings with a text (empty texts are errors,
    except in ``test_*`` parts, where they are counted warnings); cuts' audio; with ``words`` (a
    lexicon's), the OOV rate of each part, an error above ``max_oov_rate``."""
    from asr_bl.manifests import KINDS

    d = Path(data_dir)
    report = Report(f"data {d}")
    if not d.is_dir():
        report.errors.append(Problem(str(d), "directory", "does not exist"))
        return report
    found: Dict[Tuple[str, str], Dict[str, Path]] = {}
    for p in sorted(d.glob("*.jsonl.gz")):
        stem = p.name[: -len(".jsonl.gz")]
        for kind in KINDS:
            head, sep, part = stem.partition(f"_{kind}_")
            if sep and part and (corpus is None or head == corpus):
                found.setdefault((head, part), {})[kind] = p
    if not found:
        report.errors.append(Problem(str(d), "manifests", "no {corpus}_{recordings,supervisions,cuts}_{part}.jsonl.gz"))
        return report
    for (name, part), files in sorted(found.items()):
        label = f"{name} {part}"
        try:
            recs = read_manifest(files["recordings"], "recordings") if "recordings" in files else None
            sups = read_manifest(files["supervisions"], "supervisions") if "supervisions" in files else None
            cuts = read_manifest(files["cuts"], "cuts") if "cuts" in files else None
        except DataError as e:
            report.errors.append(Problem(label, "manifest", str(e)))
            continue
        texts: Dict[str, str] = {}
        if recs is not None and check_audio:
            report.errors.extend(check_recordings(recs, files["recordings"]))
        if sups is not None:
            if recs is None:
                report.errors.append(Problem(str(files["supervisions"]), "recordings",
                                             "no recordings manifest beside it"))
            else:
                sub = check_supervisions(sups, recs, files["supervisions"],
                                         empty_text_is_error=not part.startswith("test"))
                report.errors.extend(sub.errors)
                report.warnings.extend(sub.warnings)
            texts = {s.id: s.text or "" for s in sups}
        if cuts is not None:
            cache: Dict[str, Optional[str]] = {}
            for c in cuts:
                problem = cut_audio_problem(c, cache) if check_audio else None
                if problem:
                    report.errors.append(Problem(str(files["cuts"]), f"cut {c.id}", problem))
            if not texts:
                texts = {c.id: " ".join(s.text or "" for s in c.supervisions) for c in cuts}
                empty = [k for k, t in texts.items() if not t.strip()]
                target = report.warnings if part.startswith("test") else report.errors
                target.extend(Problem(str(files["cuts"]), f"cut {k}", "empty transcript") for k in empty)
        part_stats: Dict[str, Any] = {k: len(v) for k, v in (("recordings", recs), ("supervisions", sups),
                                                             ("cuts", cuts)) if v is not None}
        if words is not None and texts:
            stats = oov_stats(texts, words)
            part_stats["oov"] = stats.summary()
            if stats.all_oov_utterances:
                report.warnings.append(Problem(label, "transcripts", f"{len(stats.all_oov_utterances)} utterances "
                                               f"are all OOV (e.g. {stats.all_oov_utterances[0]}; wrong case?)"))
            if max_oov_rate is not None and stats.rate > max_oov_rate:
                report.errors.append(Problem(label, "transcripts", f"{stats.line()}; above the allowed "
                                             f"{100 * max_oov_rate:.2f}%"))
        report.stats[label] = part_stats
    return report
