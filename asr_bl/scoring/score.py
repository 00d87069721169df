"""Score hypotheses against references: sclite (Debian ``sctk``) or the in-process aligner.

:func:`score_ctm` is Kaldi's ``score_sclite.sh`` + ``hubscr.pl`` for recording-level CTM/STM:

1. filter both sides (:class:`~asr_bl.scoring.filters.HubFilter`: noise, hesitations, partial
   words) and apply the GLM (:mod:`asr_bl.scoring.glm`), then sort (recording, side, start) as
   hubscr's ``sortCTM``/``sortSTM`` do, and write ``ref.stm.filt`` / ``hyp.ctm.filt`` to ``out_dir``;
2. score those two files with ``sclite -F -D`` (reports ``<name>.sys``, ``.dtl``, ``.pra``,
   ``.raw`` kept) or with the Python scorer; both read the *same* filtered files;
3. write ``wer.json`` (counts overall, per subset, per speaker) and ``wer.md``.

How sclite scores a CTM against an STM (SCTK ``stm2ctm.c``, the DP mode Kaldi uses; no ``-T``
time-mediated alignment, no ``-m`` reduction), reproduced by the Python scorer:

* per recording and side, hypothesis words (sorted by start time) go to the reference segments in
  order: a segment takes the next words while their *midpoint* ``start + dur/2`` is before the
  segment's end; words before a segment's start (in a gap) go to the next segment; the last
  segment of the side takes all remaining words;
* each segment is aligned on its own (:mod:`asr_bl.scoring.align`); a segment whose text contains
  ``IGNORE_TIME_SEGMENT_IN_SCORING`` and its words are skipped; a side with no hypothesis words
  is all deletions; hypothesis words on a recording/side absent from the STM are refused (sclite
  aborts there too).

Where the two scorers could differ, and why they do not on our inputs: (a) sclite sums float32
costs, we sum integers, so ties built from many ``@`` deletions (0.001 each) could break
differently; (b) among alternation paths of equal cost the chosen alternative (and so the
reference word count) follows sclite's arc order, which we mirror for ``{ a / b }`` written left to
right; (c) hypothesis words written as optionally deletable ``(uh)`` (never produced by our CTM
writer; filtered hesitations are dropped instead) would be plain words to us. The tests check
agreement on real STM/CTM files written from lhotse cuts, with alternations and deletable words.

:func:`score_texts` is the same filtering, GLM and alignment on utterance-level word lists, in
process, for LM-weight x insertion-penalty sweeps.
"""
import logging
import os
import re
import shutil
import subprocess
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from asr_bl.io import Pathlike, write_json, write_text
from asr_bl.scoring.align import RefNet, align_segment, parse_ref_text
from asr_bl.scoring.counts import ErrorCounts, WerReport
from asr_bl.scoring.filters import DEFAULT_FILTER, HubFilter
from asr_bl.scoring.glm import Glm, apply_glm, read_glm
from asr_bl.scoring.trans import (
    CtmWord,
    StmSegment,
    TranscriptFormatError,
    read_ctm,
    read_stm,
    write_ctm,
    write_stm,
)

logger = logging.getLogger(__name__)

__all__ = ["ScoringError", "find_sclite", "score_ctm", "score_texts", "prepare_inputs", "score_files_python",
           "score_files_sclite", "oov_count"]

IGNORE_MARKERS = ("ignore_time_segment_in_scoring", "ignoretimesegmentinscoring")
_ALT_TOKENS = ("{", "/", "}")


class ScoringError(RuntimeError):
    """sclite failed or its reports disagree with themselves."""


def find_sclite() -> Optional[str]:
    """Path of NIST's ``sclite``: ``$SCTK_BIN/sclite``, then ``PATH``, then Debian's
    ``/usr/lib/sctk/bin/sclite`` (the ``sctk`` package does not put it on ``PATH``)."""
    cands = []
    if os.environ.get("SCTK_BIN"):
        cands.append(os.path.join(os.environ["SCTK_BIN"], "sclite"))
    which = shutil.which("sclite")
    if which:
        cands.append(which)
    cands.append("/usr/lib/sctk/bin/sclite")
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


# ------------------------------------------------------------------------------ preparation
def _filter_ref_text(text: str, hub_filter: HubFilter, glm: Optional[Glm]) -> str:
    kept: List[str] = []
    for t in text.split():
        if t in _ALT_TOKENS or t == "@":
            kept.append(t)
            continue
        r = hub_filter.ref_token(t)
        if r is not None:
            kept.append(r)
    if "{" in kept:  # the text already holds alternations (an LDC STM): map words outside them only
        out: List[str] = []
        depth, buf = 0, []
        for t in kept:
            if t == "{":
                out.extend(apply_glm(buf, glm, "ref"))
                buf = []
                depth += 1
                out.append(t)
            elif t == "}":
                depth -= 1
                out.append(t)
            elif depth:
                out.append(t)
            else:
                buf.append(t)
        out.extend(apply_glm(buf, glm, "ref"))
        return " ".join(out)
    return " ".join(apply_glm(kept, glm, "ref"))


def _filter_hyp_words(words: Sequence[CtmWord], hub_filter: HubFilter, glm: Optional[Glm]) -> List[CtmWord]:
    out = []
    for w in words:
        kept = hub_filter.hyp([w.word])
        if not kept:
            continue
        mapped = apply_glm(kept, glm, "hyp")  # single-word plain mappings; durations split evenly
        d = w.dur / len(mapped) if mapped else 0.0
        for k, m in enumerate(mapped):
            out.append(CtmWord(w.recording, w.side, w.start + k * d, d, m, w.conf, w.line))
    return out


def prepare_inputs(ctm: Pathlike, stm: Pathlike, out_dir: Pathlike, glm: Optional[Glm] = None,
                   hub_filter: Optional[HubFilter] = None) -> Tuple[Path, Path]:
    """Steps 1 of :func:`score_ctm`: validate, filter, map, sort; write ``ref.stm.filt`` and
    ``hyp.ctm.filt`` into ``out_dir``; return their paths."""
    hub_filter = hub_filter if hub_filter is not None else DEFAULT_FILTER
    ctm, stm, out_dir = Path(ctm), Path(stm), Path(out_dir)
    words = read_ctm(ctm)
    segs = read_stm(stm)
    if not words:
        raise TranscriptFormatError(f"{ctm}: the CTM has no word lines; decode first (an empty hypothesis "
                                    "set is not scored: it would be 100% deletions)")
    if not segs:
        raise TranscriptFormatError(f"{stm}: the STM has no segments; write the references first")
    ref_sides = {(s.recording, s.side) for s in segs}
    for w in words:
        if (w.recording, w.side) not in ref_sides:
            missing = sorted({(x.recording, x.side) for x in words} - ref_sides)
            raise TranscriptFormatError(
                f"{ctm}:{w.line}: recording {w.recording!r} side {w.side} is not in the STM {stm} "
                f"({len(missing)} recording sides missing, e.g. {missing[:3]}); score against the matching STM")
    for s in segs:
        s.text = _filter_ref_text(s.text, hub_filter, glm)
        try:
            parse_ref_text(s.text, where=f"{stm}:{s.line}")
        except ValueError as e:
            raise TranscriptFormatError(str(e)) from None
    segs.sort(key=lambda s: (s.recording, s.side, s.start))  # stable, like hubscr's sortSTM
    hyp = _filter_hyp_words(words, hub_filter, glm)
    hyp.sort(key=lambda w: (w.recording, w.side, w.start))  # stable, like hubscr's sortCTM
    out_dir.mkdir(parents=True, exist_ok=True)
    stm_f, ctm_f = out_dir / "ref.stm.filt", out_dir / "hyp.ctm.filt"
    write_stm((), stm_f, segments=segs)
    write_ctm(((w.recording, w.side, w.start, w.dur, w.word, w.conf) for w in hyp), ctm_f)
    return stm_f, ctm_f


# ------------------------------------------------------------------------------ python scorer
def _subset_of(recording: str, subsets: Optional[Mapping[str, str]]) -> List[str]:
    if not subsets:
        return []
    r = recording.lower()
    return [name for name, prefix in subsets.items() if r.startswith(prefix.lower())]


def oov_count(text: str, vocab: Optional[Set[str]]) -> int:
    """Scored reference words of one filtered STM text outside ``vocab``: optionally deletable
    words are not counted (they are never errors); an alternation counts only when none of its
    alternatives is fully in the vocabulary, then as the OOV words of its first alternative."""
    if not vocab:
        return 0
    toks = text.split()
    n, i = 0, 0
    while i < len(toks):
        t = toks[i]
        if t == "{":
            j = toks.index("}", i)
            alts = [a.split() for a in " ".join(toks[i + 1:j]).split("/")]
            alts = [[w for w in a if w != "@"] for a in alts]
            if not any(all(w in vocab or w.startswith("(") for w in a) for a in alts):
                n += sum(1 for w in alts[0] if w not in vocab and not w.startswith("("))
            i = j + 1
            continue
        if not t.startswith("(") and t not in vocab:
            n += 1
        i += 1
    return n


def _aggregate(per_segment: Iterable[Tuple[str, str, ErrorCounts]], subsets: Optional[Mapping[str, str]],
               oov: int, scorer: str) -> WerReport:
    overall = ErrorCounts()
    by_sub: Dict[str, ErrorCounts] = OrderedDict((k, ErrorCounts()) for k in (subsets or {}))
    by_spk: Dict[str, ErrorCounts] = {}
    for rec, spk, c in per_segment:
        overall = overall + c
        for name in _subset_of(rec, subsets):
            by_sub[name] = by_sub[name] + c
        spk = spk.lower()
        by_spk[spk] = by_spk.get(spk, ErrorCounts()) + c
    return WerReport(overall=overall, subsets=dict(by_sub), speakers=by_spk, oov_ref_words=oov, scorer=scorer)


def _segment_counts(net: RefNet, hyp: Sequence[str]) -> ErrorCounts:
    r = align_segment(net, hyp)
    err = r.sub + r.dele + r.ins
    return ErrorCounts(r.ref_words, r.sub, r.dele, r.ins, 1, int(err > 0))


def score_files_python(stm_filt: Pathlike, ctm_filt: Pathlike, subsets: Optional[Mapping[str, str]] = None,
                       vocab: Optional[Set[str]] = None,
                       alignments: Optional[List[Tuple[StmSegment, List[Tuple]]]] = None) -> WerReport:
    """Score the filtered, sorted STM/CTM pair the way ``sclite -F -D`` does (module docstring)."""
    segs = read_stm(stm_filt)
    words = read_ctm(ctm_filt) if Path(ctm_filt).stat().st_size else []
    by_side: Dict[Tuple[str, str], List[CtmWord]] = {}
    for w in words:
        by_side.setdefault((w.recording, w.side), []).append(w)
    seg_sides: Dict[Tuple[str, str], List[StmSegment]] = OrderedDict()
    for s in segs:
        seg_sides.setdefault((s.recording, s.side), []).append(s)
    extra = set(by_side) - set(seg_sides)
    if extra:
        raise TranscriptFormatError(f"{ctm_filt}: recording sides {sorted(extra)[:3]} are not in {stm_filt}")
    results: List[Tuple[str, str, ErrorCounts]] = []
    oov = 0
    for key, side_segs in seg_sides.items():
        hyp = by_side.get(key, [])
        pos = 0
        for k, s in enumerate(side_segs):
            if k == len(side_segs) - 1:
                end = len(hyp)
            else:
                end = pos
                while end < len(hyp) and hyp[end].mid < s.end:
                    end += 1
            seg_words = [w.word for w in hyp[pos:end]]
            pos = end
            if any(m in s.text.lower() for m in IGNORE_MARKERS):
                continue
            net = parse_ref_text(s.text, where=f"{stm_filt}:{s.line}")
            c = _segment_counts(net, seg_words)
            if alignments is not None:
                alignments.append((s, align_segment(net, seg_words).pairs))
            oov += oov_count(s.text, vocab)
            results.append((s.recording, s.speaker, c))
    return _aggregate(results, subsets, oov, "python")


# ------------------------------------------------------------------------------ sclite
_PRA_SCORES = re.compile(r"^Scores: \(#C #S #D #I\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")
_DTL_COUNT = re.compile(r"^\s*(Percent Substitution|Percent Deletions|Percent Insertions|Ref\. words)\s*=.*\(\s*(\d+)\)")


def _parse_pra(path: Path) -> List[Tuple[str, str, ErrorCounts]]:
    out = []
    spk = rec = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("id: ("):
            ident = line[len("id: ("):].rstrip(")")
            spk = ident.rsplit("-", 1)[0]
        elif line.startswith("File: "):
            rec = line[len("File: "):].strip()
        else:
            m = _PRA_SCORES.match(line)
            if m:
                c, s, d, i = (int(x) for x in m.groups())
                if spk is None or rec is None:
                    raise ScoringError(f"{path}: a 'Scores:' line without its id/File lines")
                out.append((rec, spk, ErrorCounts(c + s + d, s, d, i, 1, int(s + d + i > 0))))
                spk = rec = None
    return out


def _parse_dtl(path: Path) -> Dict[str, int]:
    got: Dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _DTL_COUNT.match(line)
        if m and m.group(1) not in got:
            got[m.group(1)] = int(m.group(2))
    return got


def score_files_sclite(stm_filt: Pathlike, ctm_filt: Pathlike, out_dir: Pathlike, sclite: str,
                       subsets: Optional[Mapping[str, str]] = None, vocab: Optional[Set[str]] = None,
                       name: str = "hyp.ctm.filt") -> WerReport:
    """Run ``sclite -F -D`` on the filtered pair; counts from its ``.pra`` (per segment), checked
    against its ``.dtl`` totals. Reports ``<name>.sys/.dtl/.pra/.raw`` stay in ``out_dir``."""
    out_dir = Path(out_dir)
    cmd = [sclite, "-r", str(stm_filt), "stm", "-h", str(ctm_filt), "ctm", "-F", "-D",
           "-O", str(out_dir), "-n", name, "-o", "sum", "rsum", "pra", "dtl", "-f", "0"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pra, dtl = out_dir / f"{name}.pra", out_dir / f"{name}.dtl"
    if proc.returncode != 0 or not pra.is_file() or not dtl.is_file():
        raise ScoringError(f"sclite failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}")
    per_seg = _parse_pra(pra)
    totals = _parse_dtl(dtl)
    report = _aggregate(per_seg, subsets, 0, "sclite")
    o = report.overall
    want = {"Ref. words": o.ref_words, "Percent Substitution": o.sub, "Percent Deletions": o.dele,
            "Percent Insertions": o.ins}
    if totals != want:
        raise ScoringError(f"{pra}: per-segment counts {want} disagree with {dtl} totals {totals}")
    report.oov_ref_words = sum(oov_count(s.text, vocab) for s in read_stm(stm_filt)
                               if not any(m in s.text.lower() for m in IGNORE_MARKERS))
    return report


# ------------------------------------------------------------------------------ entry points
def score_ctm(ctm: Pathlike, stm: Pathlike, out_dir: Pathlike, glm: Any = None, scorer: str = "auto",
              subsets: Optional[Mapping[str, str]] = None, vocab: Optional[Iterable[str]] = None,
              hub_filter: Optional[HubFilter] = None) -> WerReport:
    """Score a recording-level CTM against an STM, Hub5 style (module docstring).

    ``glm``: a :class:`~asr_bl.scoring.glm.Glm`, a GLM file path, or None. ``scorer``: ``"sclite"``
    (error if sctk is missing), ``"python"``, or ``"auto"`` (sclite when installed, else python
    with a warning). ``subsets``: name -> recording-id prefix (eval2000: ``{"swb": "sw_",
    "callhome": "en_"}``). ``vocab``: the recogniser's words, to count OOV reference words.
    Writes the filtered inputs, the scorer's reports and ``wer.json`` / ``wer.md`` to ``out_dir``.
    """
    if scorer not in ("auto", "sclite", "python"):
        raise ValueError(f"score_ctm: scorer must be auto, sclite or python, not {scorer!r}")
    if glm is not None and not isinstance(glm, Glm):
        glm = read_glm(glm)
    out_dir = Path(out_dir)
    stm_f, ctm_f = prepare_inputs(ctm, stm, out_dir, glm, hub_filter)
    vocab_set = {w.lower() for w in vocab} if vocab is not None else None
    exe = find_sclite() if scorer in ("auto", "sclite") else None
    if scorer == "sclite" and exe is None:
        raise ScoringError("sclite not found: install Debian's sctk (apt-get install sctk, or bash "
                           "tools/setup_env.sh as root), set SCTK_BIN, or use --scorer python")
    if scorer == "auto" and exe is None:
        logger.warning("sclite (Debian sctk) not found; scoring with the in-process Python scorer")
    if exe is not None:
        report = score_files_sclite(stm_f, ctm_f, out_dir, exe, subsets, vocab_set)
    else:
        report = score_files_python(stm_f, ctm_f, subsets, vocab_set)
    write_json(out_dir / "wer.json", report.to_json())
    write_text(out_dir / "wer.md", report.to_markdown())
    logger.info("%s: %s (%s)", ctm, report.overall.short(), report.scorer)
    return report


_REF_CACHE: "OrderedDict[Tuple[Any, ...], Tuple[RefNet, str]]" = OrderedDict()


def _ref_net(words: Tuple[str, ...], glm: Optional[Glm], hub_filter: HubFilter) -> Tuple[RefNet, str]:
    key = (words, id(glm), id(hub_filter))
    hit = _REF_CACHE.get(key)
    if hit is not None:
        return hit
    text = _filter_ref_text(" ".join(words), hub_filter, glm)
    val = (parse_ref_text(text), text)
    _REF_CACHE[key] = val
    if len(_REF_CACHE) > 200000:
        _REF_CACHE.popitem(last=False)
    return val


def score_texts(hyps: Mapping[str, Sequence[str]], refs: Mapping[str, Sequence[str]],
                speakers: Optional[Mapping[str, str]] = None, subsets: Optional[Mapping[str, str]] = None,
                vocab: Optional[Iterable[str]] = None, glm: Any = None,
                hub_filter: Optional[HubFilter] = None) -> WerReport:
    """Utterance-level scoring in process: same filter, GLM and sclite-exact alignment as
    :func:`score_ctm`, one reference utterance = one segment.

    ``refs``/``hyps``: utterance id -> words. An utterance without a hypothesis is scored as all
    deletions (never dropped); a hypothesis id absent from ``refs`` is an error. ``speakers``:
    utterance id -> speaker (default: the id). ``subsets``: name -> utterance-id prefix.
    """
    hub_filter = hub_filter if hub_filter is not None else DEFAULT_FILTER
    if glm is not None and not isinstance(glm, Glm):
        glm = read_glm(glm)
    extra = [u for u in hyps if u not in refs]
    if extra:
        raise KeyError(f"score_texts: {len(extra)} hypothesis ids have no reference, e.g. {extra[:3]}")
    vocab_set = {w.lower() for w in vocab} if vocab is not None else None
    results = []
    oov = 0
    for utt in sorted(refs):
        net, text = _ref_net(tuple(w.lower() for w in refs[utt]), glm, hub_filter)
        hyp = apply_glm(hub_filter.hyp(hyps.get(utt, ())), glm, "hyp")
        results.append((utt, speakers.get(utt, utt) if speakers else utt, _segment_counts(net, hyp)))
        oov += oov_count(text, vocab_set)
    return _aggregate(results, subsets, oov, "python")
