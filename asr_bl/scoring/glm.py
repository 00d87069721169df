"""GLM word mappings (NIST ``rfilter1`` / LDC ``en20000405_hub5.glm`` format) and the project GLM.

A GLM line is ``LHS => RHS / [ ] __ [ ] ;; comment``: the word sequence LHS is rewritten to RHS,
which may be an alternation ``{ a / b c / @ }`` (``@`` = nothing). Header lines start with ``*``
and comments with ``;;``. Matching is case-insensitive (``case_sensitive = 'F'`` in LDC's file),
left to right, longest LHS first, never re-applied to its own output. Only the unconditional
context ``[ ] __ [ ]`` is supported; a rule with any other context is refused with its line number.

Application, the same for both scorers (the filtered STM/CTM that sclite reads are written by us):

* reference (STM) text: every rule applies; an alternation goes into the STM as ``{ a / b }`` and
  sclite's network alignment takes whichever alternative aligns best;
* hypothesis (CTM) words: only rules whose RHS is a plain word sequence apply (one-to-one
  spellings, e.g. ``OK => OKAY``). Alternation rules are left to the reference side. NIST's
  csrfilt also expands hypothesis words into alternations (``<ALT_BEGIN>`` CTM lines): where the
  GLM lists a mapping in one direction only (``I'M => { I'M / I AM }`` but no rule for ``I AM``) a
  hypothesis ``i'm`` against a reference ``i am`` scores as errors here and correct in hubscr. The
  project GLM lists each variant in both directions, so this does not arise for it.

:data:`PROJECT_GLM_RULES` is the embedded corpus's own table: homophone spellings that the
synthetic corpus's text normalisation (``asr_bl/corpus/text.py``: hyphens split words, ``O.K.``
becomes ``o k``, apostrophes kept) and CMUdict both allow, each mapped to an alternation of all
its spellings.
"""
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from asr_bl.io import Pathlike, write_text

__all__ = ["GlmRule", "Glm", "GlmFormatError", "read_glm", "apply_glm", "project_glm", "write_glm",
           "PROJECT_GLM_RULES"]

#: Spelling variants of the embedded corpus: each group is one spoken form (CMUdict homophones).
PROJECT_GLM_RULES: Tuple[Tuple[str, ...], ...] = (
    ("alright", "all right"),
    ("okay", "ok", "o k"),
    ("goodbye", "good bye"),
    ("cannot", "can not"),
    ("email", "e mail"),
    ("website", "web site"),
    ("percent", "per cent"),
    ("till", "til"),
    ("t-shirt", "t shirt"),
)


class GlmFormatError(ValueError):
    """A GLM line that cannot be parsed; the message names the file and line."""


@dataclass(frozen=True)
class GlmRule:
    lhs: Tuple[str, ...]
    alternatives: Tuple[Tuple[str, ...], ...]  # one alternative = plain mapping
    line: int = 0

    @property
    def is_alternation(self) -> bool:
        return len(self.alternatives) > 1

    def rhs_text(self) -> str:
        if not self.is_alternation:
            return " ".join(self.alternatives[0])
        return "{ " + " / ".join(" ".join(a) if a else "@" for a in self.alternatives) + " }"


@dataclass
class Glm:
    rules: List[GlmRule] = field(default_factory=list)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self._index: Dict[str, List[GlmRule]] = {}
        for r in self.rules:
            self._index.setdefault(r.lhs[0], []).append(r)
        for lst in self._index.values():
            lst.sort(key=lambda r: -len(r.lhs))

    def match(self, words: Sequence[str], i: int, side: str) -> Optional[GlmRule]:
        for r in self._index.get(words[i], ()):
            if side == "hyp" and r.is_alternation:
                continue
            n = len(r.lhs)
            if tuple(words[i:i + n]) == r.lhs:
                return r
        return None


_RULE = re.compile(r"^(?P<lhs>.+?)\s*=>\s*(?P<rhs>.*?)\s*/\s*(?P<left>.*?)\s*__\s*(?P<right>.*?)\s*$")


def _parse_alternatives(rhs: str, where: str) -> Tuple[Tuple[str, ...], ...]:
    rhs = rhs.strip()
    if rhs.startswith("{"):
        if not rhs.endswith("}"):
            raise GlmFormatError(f"{where}: alternation without a closing '}}': {rhs!r}")
        alts = []
        for part in rhs[1:-1].split("/"):
            words = tuple(w for w in part.lower().split() if w != "@")
            alts.append(words)
        return tuple(alts)
    return (tuple(rhs.lower().split()),)


def read_glm(path: Pathlike) -> Glm:
    """Read a GLM file (LDC's ``en20000405_hub5.glm`` format); errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise GlmFormatError(f"{path}: cannot read the GLM ({e.strerror}); pass an existing file") from e
    rules = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";;", 1)[0].strip()
        if not line or line.startswith("*"):
            continue
        m = _RULE.match(line)
        if m is None:
            raise GlmFormatError(f"{path}:{n}: not a GLM rule 'LHS => RHS / [ ] __ [ ]': {raw.strip()!r}")
        if m.group("left").replace(" ", "") != "[]" or m.group("right").replace(" ", "") != "[]":
            raise GlmFormatError(f"{path}:{n}: only the context '[ ] __ [ ]' is supported: {raw.strip()!r}")
        lhs = tuple(m.group("lhs").lower().split())
        if not lhs:
            raise GlmFormatError(f"{path}:{n}: empty left-hand side: {raw.strip()!r}")
        rules.append(GlmRule(lhs=lhs, alternatives=_parse_alternatives(m.group("rhs"), f"{path}:{n}"), line=n))
    return Glm(rules=rules, source=str(path))


def apply_glm(words: Sequence[str], glm: Optional[Glm], side: str = "ref") -> List[str]:
    """Rewrite ``words`` (lower case) with the GLM; ``side`` is ``"ref"`` (alternations written as
    ``{ a / b }`` tokens) or ``"hyp"`` (plain mappings only). Optionally deletable words ``(uh)``
    are left alone."""
    if side not in ("ref", "hyp"):
        raise ValueError(f"apply_glm: side must be 'ref' or 'hyp', not {side!r}")
    words = [w.lower() for w in words]
    if glm is None or not glm.rules:
        return words
    out: List[str] = []
    i = 0
    while i < len(words):
        r = glm.match(words, i, side)
        if r is None:
            out.append(words[i])
            i += 1
            continue
        if r.is_alternation:
            out.append("{")
            for k, alt in enumerate(r.alternatives):
                if k:
                    out.append("/")
                out.extend(alt if alt else ["@"])
            out.append("}")
        else:
            out.extend(r.alternatives[0])
        i += len(r.lhs)
    return out


def project_glm() -> Glm:
    """The project GLM for the embedded corpus: every spelling of a group maps to the alternation
    of all of them."""
    rules = []
    for group in PROJECT_GLM_RULES:
        alts = tuple(tuple(s.split()) for s in group)
        for s in group:
            rules.append(GlmRule(lhs=tuple(s.split()), alternatives=alts))
    return Glm(rules=rules, source="asr_bl.scoring.glm.PROJECT_GLM_RULES")


def write_glm(glm: Glm, path: Pathlike) -> None:
    """Write ``glm`` in the LDC/NIST format (readable by :func:`read_glm` and csrfilt.sh)."""
    lines = [
        f';; GLM written by asr_bl.scoring (source: {glm.source})',
        "* name \"asr_bl project glm\"",
        "* format = 'NIST1'",
        "* max_nrules = '1000'",
        "* copy_no_hit = 'T'",
        "* case_sensitive = 'F'",
    ]
    for r in glm.rules:
        lines.append(f"{' '.join(r.lhs).upper()} => {r.rhs_text().upper()} / [ ] __ [ ]")
    write_text(path, "\n".join(lines) + "\n")
