"""asr_bl-train: cross-entropy training of a ResNet-22 / bL-ResNet-22 acoustic model on aligned cuts.

Trains one preset of asr_bl.models on the frame alignments of the GMM stage (cuts with a 'pdf_ali'
custom field, exp/tri2_ali) with the paper's schedule by default (SGD, Nesterov 0.9, lr 0.03 per
512 labelled frames, halved every epoch from epoch 10, 16 epochs, weight decay 1e-6, clipping 10),
on dense chunks of --chunk-frames labelled frames. The run dir --out-dir ends up a self-contained
model dir for decoding (model.pt, card.json, log_priors.npy, tree; asr_bl.train.load_model_dir),
beside checkpoints/ (every --checkpoint-every steps and each epoch end; best.pt = best dev frame
accuracy), config.json (the merged config), metrics.jsonl (per-epoch train/dev CE and frame
accuracy) and tensorboard/.

Examples:
  asr_bl-train --model bl-resnet22-a4-b1 --width 0.25 --ali-dir exp/tri2_ali \\
      --cuts exp/tri2_ali/synth_cuts_train.jsonl.gz --dev-holdout-recordings 4 \\
      --feature-dir data/fbank --epochs 4 --halve-from-epoch 2 --out-dir exp/am_bl-resnet22-a4-b1
  asr_bl-train ... --resume            # continue a killed run from its newest valid checkpoint
  asr_bl-train ... --resume --avg 3    # (re-)export the mean of the last 3 epochs as model.pt
  torchrun --nproc_per_node 8 -m asr_bl.bin.train ... --batch-frames 65536   # DDP, NCCL on GPUs

A finished run (done.json matching the arguments and inputs) is skipped; --force redoes it.
Bad input exits with status 2 and one line 'asr_bl-train: error: <file>: <what>; <fix>'; a run that
fails (diverged loss, full disk) exits with 1 naming the checkpoint that was kept.
"""
import argparse
import logging
import os
import sys
from dataclasses import fields
from typing import Any, Dict, List, Optional, Sequence

PROG = "asr_bl-train"

_HELP = {
    "cuts": "training cuts with pdf_ali (e.g. exp/tri2_ali/synth_cuts_train.jsonl.gz)",
    "dev_cuts": "dev cuts with pdf_ali for the per-epoch dev CE / frame accuracy",
    "dev_holdout_recordings": "without --dev-cuts: hold out this many training recordings as the dev set",
    "ali_dir": "alignment dir with tree, pdf_counts, num_pdfs (asr_bl-gmm align)",
    "feature_dir": "precomputed features dir (CMVN statistics and FbankConfig of each part)",
    "out_dir": "the run dir and model dir",
    "max_train_frames": "train on a deterministic subset of at most this many frames (whole cuts); 0 = all",
    "max_dev_frames": "evaluate on at most this many dev frames (whole cuts); 0 = all",
    "model": "acoustic-model preset (asr_bl-flops all lists them)",
    "width": "channel scale of the preset (e.g. 0.25 for small data)",
    "epochs": "number of epochs",
    "lr": "learning rate for --reference-batch-frames labelled frames per step",
    "momentum": "Nesterov momentum",
    "nesterov": "Nesterov momentum (the paper's)",
    "weight_decay": "L2 weight decay",
    "clip_grad_norm": "clip the gradient norm to this",
    "lr_schedule": "paper (constant, then --lr-decay per epoch from --halve-from-epoch) or linear (per step, "
                   "down to --final-lr-fraction of the lr at the last step)",
    "final_lr_fraction": "the linear schedule's last lr, as a fraction of the lr",
    "halve_from_epoch": "multiply the lr by --lr-decay every epoch from this (1-based) epoch on",
    "lr_decay": "per-epoch lr factor from --halve-from-epoch on",
    "batch_frames": "global labelled frames per optimiser step (all processes and accumulation steps)",
    "reference_batch_frames": "the batch --lr is given for (the paper's 512)",
    "lr_scaling": "lr rule for other batches: linear (lr x batch/ref), sqrt, none",
    "accum_steps": "micro-batches accumulated per step (world_size x accum_steps micro-batches per step)",
    "chunk_frames": "labelled frames per training chunk (each reads 48 more input frames)",
    "spec_augment": "SpecAugment-style masks (the paper has none)",
    "num_buckets": "duration buckets of the lhotse sampler (0 = no bucketing)",
    "num_workers": "DataLoader worker processes per training process",
    "mp_context": "how workers start: spawn or forkserver (never fork: it hangs in torch's OpenMP)",
    "seed": "seed of the initialisation, shuffling and chunk offsets",
    "device": "auto (cuda if available), cpu or cuda",
    "amp": "mixed precision (bf16 where supported, else fp16 + loss scaling); default: on for CUDA",
    "channels_last": "channels-last memory format; default: on for CUDA",
    "num_threads": "torch intra-op threads per process (0 = torch's default)",
    "dev_chunk_frames": "outputs per dev forward chunk (memory bound; results do not depend on it)",
    "checkpoint_every": "write a checkpoint every this many optimiser steps",
    "keep_step_checkpoints": "step checkpoints kept (epoch checkpoints are all kept)",
    "avg": "model.pt = mean of the last N epoch checkpoints (1 = the last epoch's weights)",
    "prior_floor": "floor of each pdf's prior, as a fraction of all frames",
    "tensorboard": "write tensorboard scalars to <out-dir>/tensorboard",
    "progress": "tqdm progress bars",
    "fault_nan_step": "testing: make the loss of this global step NaN (exercises the divergence stop)",
    "stop_after_steps": "end this invocation after this many global steps (checkpoint written)",
}


def get_parser() -> argparse.ArgumentParser:
    from asr_bl.train.config import LR_SCALINGS, LR_SCHEDULES, TrainConfig

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = _HELP.get(f.name, f.name) + " (default: %(default)s)"
        if f.name in ("amp", "channels_last", "tensorboard", "progress", "spec_augment", "nesterov"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif f.name == "lr_scaling":
            parser.add_argument(flag, choices=LR_SCALINGS, default=default, help=help_text)
        elif f.name == "lr_schedule":
            parser.add_argument(flag, choices=LR_SCHEDULES, default=default, help=help_text)
        elif f.name == "mp_context":
            parser.add_argument(flag, choices=("spawn", "forkserver"), default=default, help=help_text)
        elif f.name == "model":
            parser.add_argument(flag, required=True, metavar="PRESET", help=_HELP["model"])
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest valid checkpoint in --out-dir (none: start afresh)")
    parser.add_argument("--restart", action="store_true", help="discard the checkpoints in --out-dir and start afresh")
    parser.add_argument("--force", action="store_true", help="redo a run whose done.json says it is finished")
    parser.add_argument("--verbose", action="store_true", help="debug logging and tracebacks")
    return parser


def _config_from_args(args: argparse.Namespace):
    from asr_bl.train.config import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def _stage_args(config) -> Dict[str, Any]:
    d = config.to_dict()
    return {k: v for k, v in d.items() if k not in config.RUNTIME_FIELDS or k in ("epochs", "avg", "prior_floor")}


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s")
    if rank != 0 and not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        config = _config_from_args(args)
    except ValueError as error:
        return _error(str(error))
    from pathlib import Path

    from asr_bl.stage import Stage
    from asr_bl.train.checkpoint import list_checkpoints
    from asr_bl.train.trainer import (
        CHECKPOINT_DIR,
        BadInputError,
        ResumeMismatchError,
        TrainingDiverged,
        run,
    )

    out_dir = Path(config.out_dir)
    ali = Path(config.ali_dir)
    inputs: List[str] = [p for p in (config.cuts, config.dev_cuts, str(ali / "pdf_counts"), str(ali / "tree")) if p]
    stage = Stage(out_dir / "done.json", "train-am", _stage_args(config),
                  inputs=[p for p in inputs if Path(p).exists()])
    if rank == 0 and not args.restart and stage.is_done(args.force):
        return 0
    if not args.resume and not args.restart and list_checkpoints(out_dir / CHECKPOINT_DIR):
        return _error(f"{out_dir / CHECKPOINT_DIR}: holds checkpoints of an earlier run; pass --resume to continue "
                      "it or --restart to discard them")
    try:
        summary = run(rank, world_size, config, restart=args.restart)
    except (BadInputError, ResumeMismatchError) as error:
        if args.verbose:
            raise
        return _error(str(error))
    except TrainingDiverged as error:
        if args.verbose:
            raise
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if args.verbose:
            raise
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    if rank == 0 and summary.get("status") == "finished":
        outputs = [out_dir / n for n in ("model.pt", "card.json", "log_priors.npy", "tree")]
        stage.finish(outputs, {"history": summary["history"], "best_epoch": summary["best_epoch"],
                               "global_step": summary["global_step"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
