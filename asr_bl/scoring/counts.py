"""Error counts and WER reports: the numbers every scorer returns, in one shape.

:class:`ErrorCounts` holds sclite's absolute counts for one set of segments (reference words,
substitutions, deletions, insertions, segments, segments with an error); :class:`WerReport` holds
them overall, per subset (e.g. eval2000's SWB and CallHome halves) and per speaker (the STM's
speaker field, lower case as sclite prints it), plus the number of reference words outside the
recogniser's vocabulary. Rates are derived, never stored, so summing counts over subsets or
settings is exact.
"""
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Hashable, Mapping

__all__ = ["ErrorCounts", "WerReport", "best_setting"]


@dataclass
class ErrorCounts:
    """One set of sclite-style counts.

    ``ref_words`` is the number of reference words on the chosen alignment path (sclite's
    ``# Wrd``: correct + substituted + deleted, optionally deletable words included, alternations
    counted along the alternative the alignment took). ``sentences`` counts scored segments,
    ``sentence_errors`` those with at least one error.
    """

    ref_words: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    sentences: int = 0
    sentence_errors: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def corr(self) -> int:
        return self.ref_words - self.sub - self.dele

    @property
    def wer(self) -> float:
        """Word error rate in percent, ``100 * (sub + dele + ins) / ref_words``.

        With no reference words the rate is 0.0 when there are no errors and ``inf`` otherwise
        (insertions against an empty reference cannot be a finite rate; sclite prints the count).
        """
        if self.ref_words == 0:
            return 0.0 if self.errors == 0 else math.inf
        return 100.0 * self.errors / self.ref_words

    @property
    def ser(self) -> float:
        """Segment (sentence) error rate in percent."""
        return 0.0 if self.sentences == 0 else 100.0 * self.sentence_errors / self.sentences

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return ErrorCounts(
            self.ref_words + other.ref_words,
            self.sub + other.sub,
            self.dele + other.dele,
            self.ins + other.ins,
            self.sentences + other.sentences,
            self.sentence_errors + other.sentence_errors,
        )

    def __radd__(self, other: Any) -> "ErrorCounts":  # sum() starts from 0
        if other == 0:
            return self
        return self.__add__(other)

    def to_json(self) -> Dict[str, Any]:
        d: Dict[str, Any] = asdict(self)
        d["errors"] = self.errors
        d["wer"] = None if math.isinf(self.wer) else round(self.wer, 4)
        return d

    def short(self) -> str:
        """``%WER 12.34 [ 123 / 997, 10 ins, 20 del, 93 sub ]`` (Kaldi's ``compute-wer`` line)."""
        wer = "inf" if math.isinf(self.wer) else f"{self.wer:.2f}"
        return (f"%WER {wer} [ {self.errors} / {self.ref_words}, {self.ins} ins, {self.dele} del, "
                f"{self.sub} sub ]")


@dataclass
class WerReport:
    """Scores of one hypothesis set: overall, per subset, per speaker.

    ``oov_ref_words``: reference words not in the vocabulary passed to the scorer (they are scored
    like any other word, so each is at least one error; counted here so a report says how many
    errors no decoder could avoid). ``scorer`` is ``"sclite"`` or ``"python"``.
    """

    overall: ErrorCounts
    subsets: Dict[str, ErrorCounts] = field(default_factory=dict)
    speakers: Dict[str, ErrorCounts] = field(default_factory=dict)
    oov_ref_words: int = 0
    scorer: str = "python"

    @property
    def wer(self) -> float:
        return self.overall.wer

    def to_json(self) -> Dict[str, Any]:
        return {
            "scorer": self.scorer,
            "overall": self.overall.to_json(),
            "subsets": {k: v.to_json() for k, v in sorted(self.subsets.items())},
            "speakers": {k: v.to_json() for k, v in sorted(self.speakers.items())},
            "oov_ref_words": self.oov_ref_words,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "WerReport":
        def counts(x: Mapping[str, Any]) -> ErrorCounts:
            return ErrorCounts(**{k: int(x[k]) for k in ("ref_words", "sub", "dele", "ins", "sentences",
                                                          "sentence_errors")})

        return cls(
            overall=counts(d["overall"]),
            subsets={k: counts(v) for k, v in d.get("subsets", {}).items()},
            speakers={k: counts(v) for k, v in d.get("speakers", {}).items()},
            oov_ref_words=int(d.get("oov_ref_words", 0)),
            scorer=str(d.get("scorer", "python")),
        )

    def to_markdown(self, title: str = "WER") -> str:
        def row(name: str, c: ErrorCounts) -> str:
            wer = "inf" if math.isinf(c.wer) else f"{c.wer:.2f}"
            return (f"| {name} | {c.sentences} | {c.ref_words} | {c.corr} | {c.sub} | {c.dele} | {c.ins} | "
                    f"{c.errors} | {wer} | {c.ser:.1f} |")

        lines = [
            f"## {title} (scorer: {self.scorer})",
            "",
            "| set | segments | ref words | corr | sub | del | ins | errors | %WER | %SER |",
            "|---|---|---|---|---|---|---|---|---|---|",
            row("all", self.overall),
        ]
        lines += [row(name, c) for name, c in sorted(self.subsets.items())]
        lines += ["", f"Reference words outside the vocabulary (scored as errors): {self.oov_ref_words}"]
        if self.speakers:
            lines += ["", "| speaker | segments | ref words | corr | sub | del | ins | errors | %WER | %SER |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            lines += [row(name, c) for name, c in sorted(self.speakers.items())]
        return "\n".join(lines) + "\n"


def best_setting(reports: Mapping[Hashable, WerReport]) -> Hashable:
    """The key of the report with the lowest overall WER.

    Ties (equal error and reference-word counts) go to the smallest key in sorted order (keys of
    one sweep are comparable: numbers or tuples of numbers), else to the first in insertion order,
    so the choice never depends on dict iteration details.
    """
    if not reports:
        raise ValueError("best_setting: no reports to choose from")
    items = list(reports.items())
    try:
        items.sort(key=lambda kv: kv[0])  # deterministic tie order
    except TypeError:
        pass  # incomparable keys: keep insertion order

    def rate(kv: Any) -> Any:
        c = kv[1].overall
        return (c.wer, c.errors)

    best = items[0]
    for kv in items[1:]:
        if rate(kv) < rate(best):
            best = kv
    return best[0]
