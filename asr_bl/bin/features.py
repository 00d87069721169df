"""asr_bl-features: 64 log-mel filterbanks for every part of a manifest directory, stored with lhotse.

For each part found (train, dev, test_swb, test_ch) it reads
``<manifest-dir>/{prefix}_recordings_{part}.jsonl.gz`` + ``{prefix}_supervisions_{part}.jsonl.gz``,
makes one single-channel cut per supervision, computes the log-mel filterbanks (lhotse's
Kaldi-compatible Fbank, or kaldifeat when installed) and writes to ``<out-dir>``:

  {prefix}_cuts_{part}.jsonl.gz   cuts with features attached (what the GMM and trainer read)
  {prefix}_feats_{part}.lca       lilcom-compressed matrices (numpy files if lilcom is missing)
  {prefix}_cmvn_{part}.npz        CMVN statistics per conversation side (applied when loading)
  {prefix}_fbank_{part}.json      the feature configuration

Deltas and CMVN are applied when loading (asr_bl.features.FeatureLoader). A part whose cuts and
CMVN files exist is skipped (resumable); --overwrite recomputes.
"""
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from asr_bl.features.fbank import CMVN_MODES, FbankConfig
from asr_bl.features.pipeline import compute_and_store, cut_num_frames, feature_paths, utterance_cuts

PARTS = ("train", "dev", "test_swb", "test_ch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr_bl-features", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  asr_bl-features --manifest-dir data/manifests --prefix synth --out-dir data/fbank --num-jobs 2",
    )
    parser.add_argument("--manifest-dir", type=Path, default=Path("data/manifests"), help="input manifests (default: %(default)s)")
    parser.add_argument("--prefix", default="synth", help="corpus name prefix of the manifests (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=Path("data/fbank"), help="output directory (default: %(default)s)")
    parser.add_argument("--parts", nargs="+", default=None, choices=PARTS,
                        help="parts to process (default: every part whose manifests exist)")
    parser.add_argument("--num-jobs", type=int, default=1, help="parallel extraction processes (default: %(default)s)")
    parser.add_argument("--num-mel-bins", type=int, default=64, help="filterbank channels (default: %(default)s)")
    parser.add_argument("--cmvn", choices=CMVN_MODES, default="mean",
                        help="CMVN recorded in the config and applied when loading (default: %(default)s)")
    parser.add_argument("--storage", choices=["auto", "lilcom", "numpy"], default="auto",
                        help="feature storage: lilcom (compressed) or numpy; auto = lilcom if installed")
    parser.add_argument("--speed-perturb", type=float, nargs="*", default=[],
                        help="add speed-perturbed copies of train (e.g. 0.9 1.1) before alignment")
    parser.add_argument("--overwrite", action="store_true", help="recompute parts that are already complete")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch
    from lhotse import CutSet, load_manifest

    # Parallelism comes from --num-jobs processes; intra-op threads would oversubscribe the cores.
    torch.set_num_threads(1)

    if not args.manifest_dir.is_dir():
        print(f"error: manifest directory {args.manifest_dir} does not exist; run stage 0 "
              "(asr_bl-make-corpus or asr_bl-prepare) first", file=sys.stderr)
        return 2
    parts = args.parts or [
        p for p in PARTS if (args.manifest_dir / f"{args.prefix}_supervisions_{p}.jsonl.gz").is_file()
    ]
    if not parts:
        print(f"error: no {args.prefix}_supervisions_<part>.jsonl.gz in {args.manifest_dir} "
              f"(parts {', '.join(PARTS)}); check --prefix", file=sys.stderr)
        return 2
    config = FbankConfig(num_mel_bins=args.num_mel_bins, cmvn=args.cmvn)
    summary = {}
    for part in parts:
        rec_path = args.manifest_dir / f"{args.prefix}_recordings_{part}.jsonl.gz"
        sup_path = args.manifest_dir / f"{args.prefix}_supervisions_{part}.jsonl.gz"
        for path in (rec_path, sup_path):
            if not path.is_file():
                print(f"error: {path} is missing; run stage 0 again or drop '{part}' from --parts", file=sys.stderr)
                return 2
        cuts = utterance_cuts(load_manifest(rec_path), load_manifest(sup_path))
        if part == "train" and args.speed_perturb:
            perturbed = [cuts.perturb_speed(factor) for factor in args.speed_perturb]
            cuts = CutSet.from_cuts([c for cs in [cuts] + perturbed for c in cs])
        try:
            done = compute_and_store(
                cuts, args.out_dir, args.prefix, part, config, num_jobs=args.num_jobs,
                overwrite=args.overwrite, storage=args.storage,
            )
        except ValueError as e:  # e.g. a finished part made with another config: the message names the fix
            print(f"error: {e}", file=sys.stderr)
            return 2
        frames = sum(cut_num_frames(c, config) for c in done)
        summary[part] = {"cuts": len(done), "frames": frames, "hours": round(frames / 360000.0, 3),
                         "cuts_path": str(feature_paths(args.out_dir, args.prefix, part)["cuts"])}
        print(f"{part}: {len(done)} cuts, {frames} frames ({frames / 360000.0:.2f} h) -> {summary[part]['cuts_path']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
