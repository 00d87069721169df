"""asr_bl-validate: check a data dir of lhotse manifests or a lang dir, and print a report.

  asr_bl-validate data DIR [--corpus synth] [--lexicon LEX | --lang LANG] [--max-oov-rate F] [--no-audio]
  asr_bl-validate lang DIR

``data``: every ``{corpus}_{recordings,supervisions,cuts}_{part}.jsonl.gz`` in DIR loads (no
truncated gzip, no bad JSON line, no zero-byte file, unique ids); each recording's audio exists and
has the declared sampling rate, length and channels; each supervision lies inside its recording with
a non-empty text (a counted warning in test parts); with a lexicon or lang, each part's OOV rate.
``lang``: Kaldi's validate_lang.pl checks of a dir from ``asr_bl-gmm prepare-lang``.

The report lists every problem; exit code 0 when there are no errors, 1 when there are (warnings
alone do not fail), 2 for bad usage (a path that does not exist).
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from asr_bl.bin import UsageError, add_verbose, run_tool

PROG = "asr_bl-validate"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("data", help="a directory of lhotse manifests")
    p.add_argument("path", type=Path, help="the manifest directory (e.g. data/manifests or data/fbank)")
    p.add_argument("--corpus", default=None, help="only manifests with this prefix (default: all)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--lexicon", type=Path, default=None, help="Kaldi lexicon.txt: report each part's OOV rate")
    g.add_argument("--lang", type=Path, default=None, help="lang dir: report each part's OOV rate")
    p.add_argument("--max-oov-rate", type=float, default=None, help="an OOV rate above this is an error")
    p.add_argument("--no-audio", action="store_true", help="do not open the audio files")
    add_verbose(p)
    p = sub.add_parser("lang", help="a lang directory from asr_bl-gmm prepare-lang")
    p.add_argument("path", type=Path, help="the lang directory")
    add_verbose(p)
    return parser


def _run(args: argparse.Namespace) -> int:
    from asr_bl.validate import validate_data_dir, validate_lang_dir

    if not args.path.is_dir():
        raise UsageError(f"{args.path}: not a directory")
    if args.what == "lang":
        report = validate_lang_dir(args.path)
    else:
        words = None
        if args.lexicon is not None or args.lang is not None:
            from asr_bl.hmm.lang import read_lexicon

            lex = args.lexicon if args.lexicon is not None else args.lang / "lexicon.txt"
            if not lex.is_file():
                raise UsageError(f"{lex}: lexicon not found")
            words = {w for w, _ in read_lexicon(lex)}
        report = validate_data_dir(args.path, corpus=args.corpus, words=words, max_oov_rate=args.max_oov_rate,
                                   check_audio=not args.no_audio)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    from asr_bl.validate import DataError

    return run_tool(get_parser(), _run, argv, usage_errors=(DataError,))


if __name__ == "__main__":
    sys.exit(main())
