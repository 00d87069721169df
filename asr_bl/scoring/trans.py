"""Recording-level STM references and CTM hypotheses: writers, strict readers, the side letter.

Layouts (NIST sclite's, as Hub5'00 ships them and Kaldi's ``score_sclite.sh`` writes them)::

    STM:  <recording> <side> <speaker> <start_s> <end_s> [<labels>] word word ...
    CTM:  <recording> <side> <start_s> <dur_s> <word> [<confidence>]

Times are seconds from the start of the *recording* (not of the segment); ``<side>`` is the
conversation side, ``A`` for channel 0 and ``B`` for channel 1 (:func:`side_channel`, the one place
that mapping lives). Lines starting with ``;;`` are comments. Readers refuse malformed lines with
the file and line number (:class:`TranscriptFormatError`).
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from asr_bl.io import Pathlike, atomic_open
from asr_bl.scoring.filters import filter_reference

__all__ = [
    "CtmWord",
    "StmSegment",
    "TranscriptFormatError",
    "read_ctm",
    "read_stm",
    "side_channel",
    "side_letter",
    "write_ctm",
    "write_stm",
    "stm_segments_from_cuts",
]

_SIDES = "AB"


class TranscriptFormatError(ValueError):
    """A malformed STM/CTM file or line; the message names the file (and line)."""


def side_letter(channel: Union[int, str]) -> str:
    """``0 -> "A"``, ``1 -> "B"``; a letter is returned upper-cased."""
    if isinstance(channel, str):
        if channel.isdigit():
            channel = int(channel)
        else:
            return channel.upper()
    if not 0 <= int(channel) < len(_SIDES):
        raise ValueError(f"channel {channel} has no Hub5 side letter (only channels 0 and 1: A, B)")
    return _SIDES[int(channel)]


def side_channel(cut: Any) -> str:
    """The Hub5 side letter of a lhotse cut (or supervision, or channel number): ``"A"`` for
    channel 0, ``"B"`` for channel 1 (the CTM/STM convention of Switchboard and eval2000).

    A cut's channel is its single channel (``cut.channel``, int or one-element list); a mono
    recording (no channel) is side ``A``.
    """
    if isinstance(cut, (int, str)):
        return side_letter(cut)
    ch = getattr(cut, "channel", None)
    if ch is None:
        return "A"
    if isinstance(ch, (list, tuple)):
        if len(ch) != 1:
            raise ValueError(f"{getattr(cut, 'id', cut)}: a cut with channels {list(ch)} has no single side; "
                             "split it per channel first")
        ch = ch[0]
    return side_letter(ch)


@dataclass
class StmSegment:
    recording: str
    side: str
    speaker: str
    start: float
    end: float
    text: str
    labels: str = ""
    line: int = 0


@dataclass
class CtmWord:
    recording: str
    side: str
    start: float
    dur: float
    word: str
    conf: Optional[float] = None
    line: int = 0

    @property
    def mid(self) -> float:
        return self.start + self.dur / 2.0


def _float(tok: str, path: Path, n: int, what: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise TranscriptFormatError(f"{path}:{n}: {what} {tok!r} is not a number") from None
    if not math.isfinite(v):
        raise TranscriptFormatError(f"{path}:{n}: {what} {tok!r} is not finite")
    return v


def _content_lines(path: Pathlike, kind: str) -> Iterator[Tuple[int, str, List[str]]]:
    """``(line number, line, tokens)`` of each non-empty, non-comment (``;;``) line of an STM/CTM file."""
    path = Path(path)
    if not path.is_file():
        raise TranscriptFormatError(f"{path}: no such {kind} file")
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, raw in enumerate(f, start=1):
            line = raw.strip()
            if line and not line.startswith(";;"):
                yield n, line, line.split()


def read_stm(path: Pathlike) -> List[StmSegment]:
    """Read an STM file; raises :class:`TranscriptFormatError` naming the file and line."""
    segs = []
    for n, line, tok in _content_lines(path, "STM"):
        if len(tok) < 5:
            raise TranscriptFormatError(
                f"{path}:{n}: an STM line needs '<recording> <side> <speaker> <start> <end> [text]', got {line!r}")
        start = _float(tok[3], path, n, "start time")
        end = _float(tok[4], path, n, "end time")
        if end < start:
            raise TranscriptFormatError(f"{path}:{n}: segment ends ({end}) before it starts ({start})")
        rest = tok[5:]
        labels = ""
        if rest and rest[0].startswith("<") and rest[0].endswith(">"):
            labels, rest = rest[0], rest[1:]
        segs.append(StmSegment(tok[0], tok[1].upper(), tok[2], start, end, " ".join(rest), labels, n))
    return segs


def read_ctm(path: Pathlike) -> List[CtmWord]:
    """Read a CTM file; raises :class:`TranscriptFormatError` naming the file and line."""
    words = []
    for n, line, tok in _content_lines(path, "CTM"):
        if len(tok) not in (5, 6):
            raise TranscriptFormatError(
                f"{path}:{n}: a CTM line needs '<recording> <side> <start> <dur> <word> [conf]' "
                f"(5 or 6 fields), got {len(tok)}: {line!r}")
        start = _float(tok[2], path, n, "start time")
        dur = _float(tok[3], path, n, "duration")
        if dur < 0:
            raise TranscriptFormatError(f"{path}:{n}: negative duration {dur}")
        conf = _float(tok[5], path, n, "confidence") if len(tok) == 6 else None
        words.append(CtmWord(tok[0], tok[1].upper(), start, dur, tok[4], conf, n))
    return words


def write_ctm(entries: Iterable[Sequence[Any]], path: Pathlike) -> int:
    """Write a recording-level CTM from ``(recording_id, channel, start_s, dur_s, word[, conf])``
    tuples (``channel`` an int or a side letter); times with 2 decimals (Kaldi's convention).
    Returns the number of lines; the file appears only when complete."""
    n = 0
    with atomic_open(path) as f:
        for e in entries:
            if len(e) not in (5, 6):
                raise ValueError(f"write_ctm: entry {e!r} is not (recording, channel, start, dur, word[, conf])")
            rec, ch, start, dur, word = e[:5]
            line = f"{rec} {side_letter(ch)} {float(start):.2f} {float(dur):.2f} {word}"
            if len(e) == 6 and e[5] is not None:
                line += f" {float(e[5]):.4f}"
            f.write(line + "\n")
            n += 1
    return n


def stm_segments_from_cuts(cuts: Iterable[Any], normalize: Optional[Callable[[str], str]] = filter_reference
                           ) -> List[StmSegment]:
    """One STM segment per supervision of each cut, in recording time (``cut.start + sup.start``).

    ``normalize`` maps the supervision text to the STM text (default :func:`filter_reference`:
    lower case, noise tokens dropped, hesitations and fragments optionally deletable); ``None``
    writes the text as it is. The side comes from the supervision's channel (else the cut's).
    """
    segs = []
    seen = set()
    for cut in cuts:
        for sup in cut.supervisions:
            if sup.id in seen:  # the same supervision reached through two cuts
                continue
            seen.add(sup.id)
            start = float(cut.start) + float(sup.start)
            end = start + float(sup.duration)
            ch = sup.channel if getattr(sup, "channel", None) is not None else getattr(cut, "channel", None)
            side = side_channel(ch if ch is not None else 0)
            text = sup.text or ""
            text = normalize(text) if normalize is not None else text
            speaker = sup.speaker or f"{cut.recording_id}_{side}"
            gender = (getattr(sup, "gender", None) or "unknown").lower()
            segs.append(StmSegment(cut.recording_id, side, speaker, start, end, text, f"<o,f0,{gender}>"))
    return segs


def write_stm(cuts: Iterable[Any], path: Pathlike, normalize: Optional[Callable[[str], str]] = filter_reference,
              segments: Optional[Sequence[StmSegment]] = None) -> int:
    """Write a recording-level STM from lhotse cuts with supervisions (see
    :func:`stm_segments_from_cuts`), sorted by recording, side and start time as sclite requires.
    Pass ``segments`` instead of cuts to write given segments. Returns the number of segments."""
    segs = list(segments) if segments is not None else stm_segments_from_cuts(cuts, normalize)
    segs.sort(key=lambda s: (s.recording, s.side, s.start))
    with atomic_open(path) as f:
        f.write(';; CATEGORY "0" "" ""\n;; LABEL "O" "Overall" "Overall"\n')
        for s in segs:
            for field_ in (s.recording, s.side, s.speaker):
                if not field_ or any(c.isspace() for c in field_):
                    raise ValueError(f"write_stm: {field_!r} (segment {s}) must be one non-empty token")
            labels = f" {s.labels}" if s.labels else ""
            f.write(f"{s.recording} {s.side} {s.speaker} {s.start:.3f} {s.end:.3f}{labels} {s.text}".rstrip() + "\n")
    return len(segs)
