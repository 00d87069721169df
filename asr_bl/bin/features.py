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

Deltas and CMVN are applied when loading (asr_bl.features.FeatureLoader). A finished part made
with the same options from the same cuts is skipped ("skipping ..."); one made from the same cut
ids with other content is redone, saying why; one made with another feature configuration or
from other cut ids is refused (exit 2) unless --force recomputes it.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from asr_bl.bin import UsageError, add_force, add_num_jobs, add_verbose, run_tool
from asr_bl.features.fbank import CMVN_MODES, FbankConfig
from asr_bl.manifests import PARTS, TRAIN_PART, manifest_name, manifest_paths

PROG = "asr_bl-features"


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
    add_force(parser, "the part is complete (also: recompute a part made with other options)")
    parser.add_argument("--overwrite", dest="force", action="store_true", help=argparse.SUPPRESS)  # deprecated alias
    add_verbose(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    import torch
    from lhotse import CutSet, load_manifest

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
        cuts = utterance_cuts(load_manifest(rec_path), load_manifest(sup_path))
        if part == TRAIN_PART and args.speed_perturb:
            perturbed = [cuts.perturb_speed(factor) for factor in args.speed_perturb]
            cuts = CutSet.from_cuts([c for cs in [cuts] + perturbed for c in cs])
        try:
            done = compute_and_store(
                cuts, args.out_dir, args.prefix, part, config, num_jobs=args.num_jobs,
                overwrite=args.force, storage=args.storage,
            )
        except ValueError as e:  # a finished part made with another config or other cuts: the message names the fix
            raise UsageError(str(e)) from e
        frames = sum(cut_num_frames(c, config) for c in done)
        summary[part] = {"cuts": len(done), "frames": frames, "hours": round(frames / 360000.0, 3),
                         "cuts_path": str(feature_paths(args.out_dir, args.prefix, part)["cuts"])}
        print(f"{part}: {len(done)} cuts, {frames} frames ({frames / 360000.0:.2f} h) -> {summary[part]['cuts_path']}")
    print(json.dumps(summary))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_tool(get_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
