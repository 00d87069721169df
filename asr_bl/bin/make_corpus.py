"""Build the embedded synthetic telephone corpus (``synth``) used when no LDC corpora are given.

Example::

    python -m asr_bl.bin.make_corpus --out-dir data/synth              # ~10 h train, a few minutes
    python -m asr_bl.bin.make_corpus --out-dir /tmp/synth_tiny --size tiny   # seconds

Re-running the same command skips a finished build ("corpus: skipping ...") and resumes an
interrupted one: finished conversations are kept, the rest are rendered.
"""
import argparse
import os
import sys
from typing import List, Optional

from asr_bl.bin import UsageError, add_force, add_num_jobs, add_verbose, run_tool
from asr_bl.manifests import PARTS

PROG = "asr_bl-make-corpus"


def get_parser() -> argparse.ArgumentParser:
    from asr_bl.corpus.build import SIZES

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Generate a synthetic telephone-band conversational English corpus with TTS engines "
            "(espeak-ng from PyPI; flite and festival when installed), in Switchboard/Hub5'00 shape: "
            "2-channel 8 kHz conversations (one speaker per side), parts "
            f"{', '.join(PARTS)}; test_swb uses voices seen in training, test_ch unseen voices and a "
            "harsher channel. Writes lhotse manifests synth_{recordings,supervisions}_<part>.jsonl.gz, "
            "lexicon.txt, lm_text.txt and SUMMARY.md into --out-dir. Deterministic for a seed; "
            "re-running skips a finished build and resumes an interrupted one."
        ),
        epilog="example:\n  asr_bl-make-corpus --out-dir /tmp/synth_tiny --size tiny",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out-dir", required=True, help="corpus directory (created if missing)")
    parser.add_argument("--size", default="default", choices=sorted(SIZES),
                        help="default: ~10 h of training speech (minutes on 2 cores); tiny: ~4 min of audio (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same corpus")
    add_num_jobs(parser, what="parallel rendering processes")
    add_force(parser, "the build is complete (finished conversations are still reused)")
    add_verbose(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    from asr_bl.corpus.build import build_corpus
    try:  # a missing TTS engine (EngineMissingError) is a failure of the set-up: exit code 1
        summary = build_corpus(args.out_dir, size=args.size, seed=args.seed, num_jobs=args.num_jobs, force=args.force)
    except ValueError as e:  # a directory planned with other settings: the message names the fix
        raise UsageError(f"{args.out_dir}: {e}") from e
    with open(os.path.join(args.out_dir, "SUMMARY.md")) as f:
        print(f.read())
    print(f"corpus in {args.out_dir} (built in {summary['build']['total_seconds']} s)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_tool(get_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
