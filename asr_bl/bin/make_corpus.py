"""Build the embedded synthetic telephone corpus (``synth``) used when no LDC corpora are given.

Example::

    python -m asr_bl.bin.make_corpus --out-dir data/synth              # ~10 h train, a few minutes
    python -m asr_bl.bin.make_corpus --out-dir /tmp/synth_tiny --size tiny   # seconds

Re-running the same command resumes: finished conversations are kept, the rest are rendered.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

from asr_bl.corpus.build import PARTS, SIZES, build_corpus
from asr_bl.corpus.engines import EngineMissingError


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr_bl-make-corpus",
        description=(
            "Generate a synthetic telephone-band conversational English corpus with TTS engines "
            "(espeak-ng from PyPI; flite and festival when installed), in Switchboard/Hub5'00 shape: "
            "2-channel 8 kHz conversations (one speaker per side), parts "
            f"{', '.join(PARTS)}; test_swb uses voices seen in training, test_ch unseen voices and a "
            "harsher channel. Writes lhotse manifests synth_{recordings,supervisions}_<part>.jsonl.gz, "
            "lexicon.txt, lm_text.txt and SUMMARY.md into --out-dir. Deterministic for a seed; "
            "re-running resumes an interrupted build."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out-dir", required=True, help="corpus directory (created if missing)")
    parser.add_argument("--size", default="default", choices=sorted(SIZES),
                        help="default: ~10 h of training speech (minutes on 2 cores); tiny: ~4 min of audio (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same corpus")
    parser.add_argument("--num-jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="parallel rendering processes")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.num_jobs < 1:
        print("error: --num-jobs must be at least 1", file=sys.stderr)
        return 2
    try:
        summary = build_corpus(args.out_dir, size=args.size, seed=args.seed, num_jobs=args.num_jobs)
    except (EngineMissingError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    with open(os.path.join(args.out_dir, "SUMMARY.md")) as f:
        print(f.read())
    print(f"corpus written to {args.out_dir} in {summary['build']['total_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
