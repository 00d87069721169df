"""asr_bl-score: Hub5-style word error rates, with NIST sclite (Debian sctk) or the in-process scorer.

CTM mode (what Kaldi's score_sclite.sh + hubscr.pl do): a recording-level CTM against an STM;
noise tokens, hesitations and partial words filtered (hesitations and fragments in the reference
optionally deletable), the GLM applied, both files sorted, then scored with `sclite -F -D`
(--scorer sclite, the default when installed) or the Python scorer that gives sclite's counts
(--scorer python). Writes to --out-dir: ref.stm.filt, hyp.ctm.filt, sclite's reports
(hyp.ctm.filt.sys/.dtl/.pra/.raw) when sclite scored, wer.json and wer.md.

Text mode: Kaldi-style text files ("<utt-id> word word ...") for hypotheses and references, one
utterance = one segment, scored in process (same filtering, GLM and alignment).

--glm takes a GLM file (LDC's en20000405_hub5.glm format) or the word "project" for the GLM of
the embedded corpus's spelling variants.
"""
import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from asr_bl.io import write_json, write_text
from asr_bl.scoring import (
    GlmFormatError,
    ScoringError,
    TranscriptFormatError,
    project_glm,
    read_glm,
    score_ctm,
    score_texts,
)

PROG = "asr_bl-score"


@dataclass
class ScoreConfig:
    scorer: str = "auto"
    glm: Optional[str] = None
    out_dir: Path = Path("score")


class UsageError(ValueError):
    pass


def get_parser() -> argparse.ArgumentParser:
    d = ScoreConfig()
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=("examples:\n"
                "  asr_bl-score --ctm exp/tri2/decode_test_swb/hyp.ctm --stm data/test_swb.stm --glm project \\\n"
                "      --out-dir exp/tri2/decode_test_swb/score\n"
                "  asr_bl-score --ctm eval2000.ctm --stm eval2000/stm --glm eval2000/glm \\\n"
                "      --subset swb=sw_ --subset callhome=en_ --vocab data/lang/words.txt --out-dir score\n"
                "  asr_bl-score --hyp-text hyp.txt --ref-text data/dev/text --scorer python --out-dir score"))
    g = p.add_argument_group("CTM mode")
    g.add_argument("--ctm", type=Path, help="recording-level hypothesis CTM")
    g.add_argument("--stm", type=Path, help="reference STM")
    t = p.add_argument_group("text mode")
    t.add_argument("--hyp-text", type=Path, help="hypotheses: '<utt-id> word word ...' per line")
    t.add_argument("--ref-text", type=Path, help="references in the same format")
    t.add_argument("--utt2spk", type=Path, help="'<utt-id> <speaker>' per line (per-speaker counts)")
    p.add_argument("--glm", default=d.glm, help="GLM file, or 'project' for the embedded corpus's GLM (default: none)")
    p.add_argument("--scorer", default=d.scorer, choices=("auto", "sclite", "python"),
                   help="auto: sclite when installed, else python with a warning (default: %(default)s)")
    p.add_argument("--subset", action="append", default=[], metavar="NAME=PREFIX",
                   help="count a subset by id prefix, e.g. swb=sw_ (repeatable)")
    p.add_argument("--vocab", type=Path,
                   help="vocabulary (words.txt or one word per line) to count OOV reference words")
    p.add_argument("--out-dir", type=Path, default=d.out_dir, help="output directory (default: %(default)s)")
    p.add_argument("--verbose", action="store_true", help="log details; tracebacks on errors")
    return p


def _read_text(path: Path) -> Dict[str, List[str]]:
    if not path.is_file():
        raise TranscriptFormatError(f"{path}: no such text file")
    out: Dict[str, List[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        tok = line.split()
        if not tok:
            continue
        if tok[0] in out:
            raise TranscriptFormatError(f"{path}:{n}: utterance {tok[0]!r} appears twice; keep one line per utterance")
        out[tok[0]] = tok[1:]
    return out


def _read_vocab(path: Path) -> List[str]:
    if not path.is_file():
        raise TranscriptFormatError(f"{path}: no such vocabulary file")
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.split()]


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        subsets = {}
        for s in args.subset:
            name, eq, prefix = s.partition("=")
            if not eq or not name or not prefix:
                raise UsageError(f"--subset {s!r}: write NAME=PREFIX, e.g. --subset swb=sw_")
            subsets[name] = prefix
        ctm_mode = args.ctm is not None or args.stm is not None
        text_mode = args.hyp_text is not None or args.ref_text is not None
        if ctm_mode == text_mode:
            raise UsageError("give either --ctm and --stm, or --hyp-text and --ref-text")
        if ctm_mode and (args.ctm is None or args.stm is None):
            raise UsageError("CTM mode needs both --ctm and --stm")
        if text_mode and (args.hyp_text is None or args.ref_text is None):
            raise UsageError("text mode needs both --hyp-text and --ref-text")
        glm = None
        if args.glm == "project":
            glm = project_glm()
        elif args.glm:
            glm = read_glm(args.glm)
        vocab = _read_vocab(args.vocab) if args.vocab else None
        if ctm_mode:
            report = score_ctm(args.ctm, args.stm, args.out_dir, glm=glm, scorer=args.scorer,
                               subsets=subsets or None, vocab=vocab)
        else:
            if args.scorer == "sclite":
                raise UsageError("text mode is scored in process: use --scorer python or auto")
            hyps, refs = _read_text(args.hyp_text), _read_text(args.ref_text)
            extra = [u for u in hyps if u not in refs]
            if extra:
                raise TranscriptFormatError(f"{args.hyp_text}: {len(extra)} utterances have no reference in "
                                            f"{args.ref_text}, e.g. {extra[:3]}; score against the matching references")
            spk = None
            if args.utt2spk:
                spk = {k: v[0] for k, v in _read_text(args.utt2spk).items() if v}
            report = score_texts(hyps, refs, speakers=spk, subsets=subsets or None, vocab=vocab, glm=glm)
            write_json(args.out_dir / "wer.json", report.to_json())
            write_text(args.out_dir / "wer.md", report.to_markdown())
    except (UsageError, TranscriptFormatError, GlmFormatError) as e:
        if args.verbose:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ScoringError as e:
        if args.verbose:
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    lines = [f"all: {report.overall.short()}"]
    lines += [f"{k}: {v.short()}" for k, v in sorted(report.subsets.items())]
    lines.append(f"oov reference words: {report.oov_ref_words}; scorer: {report.scorer}; reports in {args.out_dir}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
