"""asr_bl-features: 64 log-mel filterbanks for every part of a manifest directory, stored with lhotse.

For each part found (train, dev, test_swb, test_ch) it reads
``<manifest-dir>/{prefix}_recordings_{part}.jsonl.gz`` + ``{prefix}_supervisions_{part}.jsonl.gz``,
makes one single-channel cut per supervision, computes the log-mel filterbanks (lhotse's
Kaldi-compatible Fbank, or kaldifeat when installed) and writes to ``<out-dir>``:

  {prefix}_cuts_{part}.jsonl.gz   cuts with features attached (what the GMM and trainer read)
  {prefix}_feats_{part}.lca       lilcom-compressed matrices (numpy files if lilcom is missing)
  {prefix}_cmvn_{part}.npz        CMVN statistics per conversation side (applied when loading)
  {prefix}_fbank_{part}.json      the feature configuration

  {prefix}_done_{part}.json       the part's stage record (asr_bl.stage)

Inputs are validated first (asr_bl.validate): a corrupt or empty manifest, duplicate ids, a
supervision on an unknown recording or channel, or an empty transcript (outside the test parts) is an
error (exit 2) naming the file. Cuts whose audio cannot be read as declared (missing, empty or
garbage file, another sampling rate or length, a segment past the recording's end) are listed in
{prefix}_failures_{part}.txt and fail the part (exit 2); --max-bad-audio F instead drops them when
they are at most a fraction F of the part's cuts, and the summary says "N of M dropped".

Deltas and CMVN are applied when loading (asr_bl.features.FeatureLoader). A finished part made
with the same options from the same cuts is skipped ("skipping ..."); one made from the same cut
ids with other content is redone, saying why; one made with another feature configuration or
from other cut ids is refused (exit 2) unless --force recomputes it.
"""
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from asr_bl.bin import UsageError, add_force, add_num_jobs, add_verbose, run_tool
from asr_bl.features.fbank import CMVN_MODES, FbankConfig
from asr_bl.manifests import PARTS, TRAIN_PART, manifest_name, manifest_paths

PROG = "asr_bl-features"
logger = logging.getLogger("asr_bl.bin.features")


def get_parser() -> argparse.ArgumentParser:
    defaults = FbankConfig()
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  asr_bl-features --manifest-dir data/manifests --prefix synth --out-dir data/fbank "
               "--num-jobs 2",
    )
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"),
                        help="input manifests (default: %(default)s)")
    parser.add_argument("--prefix", default="synth", help="corpus name prefix of the manifests (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path("data/fbank"),
                        help="output directory (default: %(default)s)")
    parser.add_argument("--parts", nargs="+", default=None, choices=PARTS,
                        help="parts to process (default: every part whose manifests exist)")
    add_num_jobs(parser, what="parallel extraction processes")
    parser.add_argument("--num-mel-bins", type=int, default=defaults.num_mel_bins,
                        help="filterbank channels (default: %(default)s)")
    parser.add_argument("--cmvn", choices=CMVN_MODES, default=defaults.cmvn,
                        help="CMVN recorded in the config and applied when loading (default: %(default)s)")
    parser.add_argument("--storage", choices=["auto", "lilcom", "numpy"], default="auto",
                        help="feature storage: lilcom (compressed) or numpy; auto = lilcom if installed")
    parser.add_argument("--speed-perturb", type=float, nargs="*", default=[],
                        help="add speed-perturbed copies of train (e.g. 0.9 1.1) before alignment")
    parser.add_argument("--max-bad-audio", type=_fraction, default=0.0, metavar="F",
                        help="drop cuts with unreadable audio (listed in {prefix}_failures_{part}.txt) when they "
                             "are at most this fraction of a part; above it the part fails (default: %(default)s, "
                             "any bad audio fails)")
    add_force(parser, "the part is complete (also: recompute a part made with other options)")
    parser.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)  # deprecated alias
    add_verbose(parser)
    return parser


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _read_part(rec_path: Path, sup_path: Path, part: str):
    """The part's recordings and supervisions, validated (DataError naming the file otherwise)."""
    from asr_bl.validate import check_supervisions, read_manifest

    fix = "rerun stage 0 (asr_bl-make-corpus / asr_bl-prepare) with --force, or fix the data preparation"
    recordings = read_manifest(rec_path, "recordings", fix)
    supervisions = read_manifest(sup_path, "supervisions", fix)
    # Extents (a segment past its recording's end) are checked per cut with the audio, under --max-bad-audio.
    report = check_supervisions(supervisions, recordings, sup_path, empty_text_is_error=not part.startswith("test"),
                                check_extent=False)
    for w in report.warnings:
        logger.warning("%s", w)
    report.raise_if_errors("fix the data preparation (asr_bl-validate data DIR lists every problem)")
    return recordings, supervisions


def _run(args: argparse.Namespace) -> int:
    import torch
    from lhotse import CutSet

    from asr_bl.features.pipeline import compute_and_store, cut_num_frames, feature_paths, utterance_cuts

    # Parallelism comes from --num-jobs processes; intra-op threads would oversubscribe the cores.
    torch.set_num_threads(1)

    if not args.manifest_dir.is_dir():
        raise UsageError(f"{args.manifest_dir}: manifest directory does not exist; run stage 0 "
                         "(asr_bl-make-corpus or asr_bl-prepare) first")
    parts = args.parts or [p for p in PARTS if manifest_paths(args.manifest_dir, args.prefix, p)[1].is_file()]
    if not parts:
        raise UsageError(f"{args.manifest_dir}: no {manifest_name(args.prefix, 'supervisions', '<part>')} "
                         f"(parts {', '.join(PARTS)}); check --prefix")
    config = FbankConfig(num_mel_bins=args.num_mel_bins, cmvn=args.cmvn)
    summary = {}
    for part in parts:
        rec_path, sup_path = manifest_paths(args.manifest_dir, args.prefix, part)
        for path in (rec_path, sup_path):
            if not path.is_file():
                raise UsageError(f"{path}: missing; run stage 0 again or drop '{part}' from --parts")
        cuts = utterance_cuts(*_read_part(rec_path, sup_path, part))
        if part == TRAIN_PART and args.speed_perturb:
            perturbed = [cuts.perturb_speed(factor) for factor in args.speed_perturb]
            cuts = CutSet.from_cuts([c for cs in [cuts] + perturbed for c in cs])
        try:
            done = compute_and_store(
                cuts, args.out_dir, args.prefix, part, config, num_jobs=args.num_jobs,
                overwrite=args.force, storage=args.storage, max_bad_fraction=args.max_bad_audio,
            )
        except ValueError as e:  # a finished part made with another config or other cuts: the message names the fix
            raise UsageError(str(e)) from e
        frames = sum(cut_num_frames(c, config) for c in done)
        summary[part] = {"cuts": len(done), "frames": frames, "hours": round(frames / 360000.0, 3),
                         "cuts_path": str(feature_paths(args.out_dir, args.prefix, part)["cuts"])}
        dropped = len(cuts) - len(done)
        if dropped:
            summary[part]["dropped"] = dropped
            print(f"{part}: {dropped} of {len(cuts)} cuts dropped for bad audio "
                  f"(listed in {feature_paths(args.out_dir, args.prefix, part)['failures']})")
        print(f"{part}: {len(done)} cuts, {frames} frames ({frames / 360000.0:.2f} h) -> {summary[part]['cuts_path']}")
    print(json.dumps(summary))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from asr_bl.validate import DataError

    return run_tool(get_parser(), _run, argv, usage_errors=(DataError,))


if __name__ == "__main__":
    sys.exit(main())
