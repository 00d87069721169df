"""Train and evaluate the ImageNet bL-Nets on an ImageFolder tree (``asr_bl-imagenet``).

The paper's recipe (Appendix A) is the default: SGD with Nesterov momentum 0.9, learning rate 0.1
per 256 images (scaled linearly with the global batch), weight decay 1e-4, cosine decay over 110
epochs (stepped per iteration); random-resized crop 224 + horizontal flip + colour jitter for
training; resize 256 / centre-crop 224 for evaluation, plus the paper's "@256" evaluation of the
same weights, which the official code runs as resize 256 / centre-crop 256 (no 0.875 margin).

Multi-process training goes through ``torchrun`` (DDP; NCCL on GPUs, gloo on CPUs); mixed
precision and channels-last are used on GPUs. Each epoch ends with an atomic checkpoint
(``checkpoint.pth.tar``, resumed automatically) and, for the best top-1, ``model_best.pth.tar`` in
the official bL-Net layout (load it with :func:`asr_bl.vision.load_official`). Per-epoch metrics
are appended to ``metrics.jsonl``. Resuming reproduces an uninterrupted run: every epoch seeds its
shuffling and augmentation from (seed, epoch, rank).

Example::

    torchrun --nproc_per_node 8 -m asr_bl.vision.train --data /data/imagenet \\
        --arch bl_resnet50 --batch-size 64 --out-dir exp/bl_resnet50_a2_b4
"""
import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from asr_bl.io import save_torch
from asr_bl.train.distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_buffers,
    grad_scaler,
    init_distributed,
    resumed_step,
)
from asr_bl.vision.checkpoint import load_official, save_official
from asr_bl.vision.models import MODELS

__all__ = ["TrainConfig", "cosine_lr", "accuracy_counts", "build_transforms", "train", "main"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Centre-crop fraction of the evaluation resize (224 / 256).
EVAL_CROP_FRACTION = 0.875
CHECKPOINT_NAME = "checkpoint.pth.tar"
BEST_NAME = "model_best.pth.tar"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that defines a training run (the CLI's options)."""

    data: str = ""
    out_dir: str = "exp/imagenet"
    arch: str = "bl_resnet50"
    num_classes: int = 1000
    epochs: int = 110
    batch_size: int = 64  # per process
    lr: float = 0.1  # for a global batch of 256; scaled linearly
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0
    crop_size: int = 224
    eval_sizes: Tuple[int, ...] = (224, 256)
    workers: int = 4
    seed: int = 0
    amp: bool = True  # only takes effect on GPU
    evaluate_only: bool = False
    weights: Optional[str] = None
    restart: bool = False
    eval_every: int = 1
    stop_after_epoch: Optional[int] = None  # end this invocation early (e.g. job time limits)


# ----------------------------------------------------------------------------- pieces


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0) -> float:
    """Linear warm-up to ``base_lr`` then half a cosine period down to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))


def accuracy_counts(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> List[int]:
    """Number of examples whose label is among the top-k logits, for each k (k capped at classes)."""
    max_k = min(max(ks), logits.shape[1])
    top = logits.topk(max_k, dim=1).indices
    hit = top.eq(target[:, None])
    return [int(hit[:, : min(k, max_k)].any(dim=1).sum()) for k in ks]


def build_transforms(crop_size: int, eval_size: int, eval_resize: Optional[int] = None):
    """(train transform, eval transform) of the paper's recipe at the given sizes.

    Evaluation resizes the shorter side to ``eval_resize`` (default ``eval_size / 0.875``, i.e.
    256 for 224) and centre-crops ``eval_size``.
    """
    if eval_resize is None:
        eval_resize = int(eval_size / EVAL_CROP_FRACTION + 0.5)
    from torchvision import transforms as T

    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train = T.Compose([
        T.RandomResizedCrop(crop_size),
        T.RandomHorizontalFlip(),
        T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        T.ToTensor(),
        normalize,
    ])
    evaluation = T.Compose([
        T.Resize(eval_resize),
        T.CenterCrop(eval_size),
        T.ToTensor(),
        normalize,
    ])
    return train, evaluation


def _image_folder(root: Path, transform) -> Dataset:
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a directory: --data must hold train/ and val/ ImageFolder trees "
            "(one sub-directory of images per class)"
        )
    return ImageFolder(str(root), transform=transform)


# ----------------------------------------------------------------------------- loops


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    ctx: DistContext,
    device: torch.device,
    desc: str = "eval",
) -> Dict[str, float]:
    """Top-1/top-5 (percent) and mean loss of ``model`` over all of ``dataset``.

    Each process takes every ``world_size``-th example (no padding duplicates), and the counts are
    summed across processes, so the result is exact for any world size.
    """
    shard = Subset(dataset, list(range(ctx.rank, len(dataset), ctx.world_size)))
    loader = DataLoader(shard, batch_size=config.batch_size, shuffle=False,
                        num_workers=config.workers, pin_memory=device.type == "cuda")
    criterion = nn.CrossEntropyLoss(reduction="sum")
    model.eval()
    totals = [0.0, 0.0, 0.0, 0.0]  # loss, top1, top5, count
    use_amp = config.amp and device.type == "cuda"
    with torch.no_grad():
        for images, target in tqdm(loader, desc=desc, disable=not ctx.is_main, leave=False):
            images = images.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = model(images)
            top1, top5 = accuracy_counts(logits.float(), target)
            totals[0] += float(criterion(logits.float(), target))
            totals[1] += top1
            totals[2] += top5
            totals[3] += target.numel()
    loss, top1, top5, count = all_reduce_sum(totals, ctx, device)
    count = max(count, 1.0)
    return {"loss": loss / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count,
            "count": int(count)}


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler,
    config: TrainConfig,
    ctx: DistContext,
    device: torch.device,
    epoch: int,
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int,
) -> Tuple[Dict[str, float], int]:
    criterion = nn.CrossEntropyLoss()
    model.train()
    use_amp = config.amp and device.type == "cuda"
    totals = [0.0, 0.0, 0.0, 0.0]
    lr = base_lr
    progress = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not ctx.is_main)
    for images, target in progress:
        lr = cosine_lr(step, total_steps, base_lr, warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, enabled=use_amp):
            logits = model(images)
            loss = criterion(logits, target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        top1, top5 = accuracy_counts(logits.detach().float(), target)
        totals[0] += float(loss.detach()) * target.numel()
        totals[1] += top1
        totals[2] += top5
        totals[3] += target.numel()
        progress.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.4f}")
    loss, top1, top5, count = all_reduce_sum(totals, ctx, device)
    count = max(count, 1.0)
    return {"loss": loss / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count,
            "lr": lr, "count": int(count)}, step


def _seed_epoch(config: TrainConfig, epoch: int, rank: int) -> None:
    # Shuffling and augmentation depend only on (seed, epoch, rank): a resumed run repeats the
    # uninterrupted one exactly.
    torch.manual_seed(config.seed * 1_000_003 + epoch * 1009 + rank)


def train(config: TrainConfig) -> Dict[str, float]:
    """Run training (or evaluation only) as ``config`` says; returns the last evaluation metrics."""
    if config.arch not in MODELS:
        raise ValueError(f"unknown --arch {config.arch!r}; choose from {sorted(MODELS)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = init_distributed(device.type)
    try:
        return _run(config, ctx, device)
    finally:
        if ctx.enabled:
            dist.destroy_process_group()


def _run(config: TrainConfig, ctx: DistContext, device: torch.device) -> Dict[str, float]:
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    out_dir = Path(config.out_dir)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    data = Path(config.data)
    train_tf, _ = build_transforms(config.crop_size, config.eval_sizes[0])
    # The first size is the standard evaluation (resize size/0.875, centre crop); the further ones
    # are "@256"-style evaluations at a larger scale, resized to the crop size itself as in the
    # official evaluation code.
    eval_sets = {
        size: _image_folder(
            data / "val",
            build_transforms(config.crop_size, size, None if index == 0 else size)[1])
        for index, size in enumerate(config.eval_sizes)
    }

    torch.manual_seed(config.seed)
    model = MODELS[config.arch](num_classes=config.num_classes)
    weights = config.weights
    if config.evaluate_only and not weights:
        weights = str(out_dir / BEST_NAME)
        if not Path(weights).is_file():
            raise FileNotFoundError(
                f"--evaluate needs weights: {weights} does not exist; pass --weights FILE "
                "(an official .pth.tar or a model_best.pth.tar)")
    if weights:
        load_official(model, weights)
        if ctx.is_main:
            logger.info("loaded weights from %s", weights)
    model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    if config.evaluate_only:
        results = {}
        for size, dataset in eval_sets.items():
            results[f"val@{size}"] = evaluate(model, dataset, config, ctx, device, desc=f"eval@{size}")
            if ctx.is_main:
                logger.info("val@%d: %s", size, _fmt(results[f"val@{size}"]))
        return results

    train_set = _image_folder(data / "train", train_tf)
    if len(train_set.classes) != config.num_classes:
        raise ValueError(
            f"{data / 'train'} has {len(train_set.classes)} classes but --num-classes is "
            f"{config.num_classes}; pass --num-classes {len(train_set.classes)}"
        )
    sampler = torch.utils.data.distributed.DistributedSampler(
        train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=config.seed,
        drop_last=True)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler,
                        num_workers=config.workers, pin_memory=device.type == "cuda", drop_last=True)
    if len(loader) == 0:
        raise ValueError(
            f"{data / 'train'} has {len(train_set)} images, fewer than one batch of "
            f"{config.batch_size} per process x {ctx.world_size} processes; lower --batch-size"
        )
    global_batch = config.batch_size * ctx.world_size
    base_lr = config.lr * global_batch / 256.0
    total_steps = config.epochs * len(loader)
    warmup_steps = int(round(config.warmup_epochs * len(loader)))
    optimizer = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=config.momentum,
                                nesterov=True, weight_decay=config.weight_decay)
    scaler = grad_scaler(config.amp and device.type == "cuda")

    start_epoch, step, best_top1 = 0, 0, -1.0
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.is_file() and not config.restart:
        # Our own file, written by this trainer: full unpickling is fine.
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state.get("arch") != config.arch or state.get("num_classes") != config.num_classes:
            raise ValueError(
                f"{checkpoint_path} is for --arch {state.get('arch')} with "
                f"{state.get('num_classes')} classes, not {config.arch} with {config.num_classes}; "
                "use another --out-dir or pass --restart to overwrite it"
            )
        model.load_state_dict({k[len("module."):]: v for k, v in state["state_dict"].items()})
        optimizer.load_state_dict(state["optimizer"])
        # A scaler saved with AMP off has an empty state, which GradScaler refuses to load;
        # an enabled one then starts from its default scale.
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best_top1 = state["epoch"], state["best_top1"]
        # Checkpoints are written at epoch ends only, so the schedule position is the number of
        # epochs done in *this* run's steps per epoch: the saved step count is in the old run's
        # units when the world size or the batch size has changed, and would leave the cosine
        # schedule unfinished (or overrun it) at the last epoch.
        step = resumed_step(
            start_epoch, len(loader), state["step"], state.get("world_size"),
            state.get("config", {}).get("batch_size"), ctx.world_size, config.batch_size,
            checkpoint_path, total_steps, log=logger, warn=ctx.is_main)
        if ctx.is_main:
            logger.info("resuming from %s at epoch %d (step %d)", checkpoint_path, start_epoch, step)
    net: nn.Module = model
    if ctx.enabled:  # wrapped after resuming, so every process starts from the same weights
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if ctx.is_main:
        logger.info("%s: %d train images, %d classes, %d processes x batch %d, lr %.4f, %d epochs",
                    config.arch, len(train_set), config.num_classes, ctx.world_size,
                    config.batch_size, base_lr, config.epochs)

    last: Dict[str, float] = {}
    end_epoch = config.epochs if config.stop_after_epoch is None else min(config.epochs, config.stop_after_epoch)
    for epoch in range(start_epoch, end_epoch):
        _seed_epoch(config, epoch, ctx.rank)
        sampler.set_epoch(epoch)
        started = time.time()
        train_metrics, step = _train_epoch(net, loader, optimizer, scaler, config, ctx, device,
                                           epoch, step, total_steps, base_lr, warmup_steps)
        record: Dict[str, object] = {"epoch": epoch + 1, "step": step, "train": train_metrics,
                                     "seconds": round(time.time() - started, 2)}
        is_best = False
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == end_epoch:
            broadcast_buffers(model, ctx)
            # The bare module, not DDP: shards may hold different numbers of batches, and DDP's
            # per-forward buffer broadcast would then wait for a peer that has finished.
            for size, dataset in eval_sets.items():
                record[f"val@{size}"] = evaluate(model, dataset, config, ctx, device,
                                                 desc=f"eval@{size}")
            top1 = record[f"val@{config.eval_sizes[0]}"]["top1"]
            is_best = top1 > best_top1
            best_top1 = max(best_top1, top1)
            last = {k: v for k, v in record.items() if k.startswith("val@")}
        if ctx.is_main:
            state = {
                "state_dict": {f"module.{k}": v.cpu() for k, v in model.state_dict().items()},
                "arch": config.arch, "num_classes": config.num_classes, "epoch": epoch + 1,
                "step": step, "best_top1": best_top1, "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "config": asdict(config),
                "world_size": ctx.world_size,
            }
            save_torch(state, checkpoint_path)
            if is_best:
                # The official layout: load it with load_official (e.g. --evaluate --weights).
                save_official(model, out_dir / BEST_NAME, epoch=epoch + 1, arch=config.arch,
                              best_top1=best_top1)
            with open(out_dir / METRICS_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")
            logger.info("epoch %d: train %s | %s", epoch + 1, _fmt(train_metrics),
                        " | ".join(f"{k} {_fmt(v)}" for k, v in record.items() if k.startswith("val@")))
        if ctx.enabled:
            dist.barrier()
    return last


def _fmt(metrics: Dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "count")


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr_bl-imagenet",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Multi-GPU/multi-process: torchrun --nproc_per_node N -m asr_bl.vision.train ...",
    )
    d = TrainConfig()
    parser.add_argument("--data", required=True,
                        help="ImageFolder root with train/ and val/ (one sub-directory per class)")
    parser.add_argument("--out-dir", default=d.out_dir,
                        help="checkpoints and metrics.jsonl go here; an existing checkpoint.pth.tar "
                             "is resumed (default: %(default)s)")
    parser.add_argument("--arch", default=d.arch, choices=sorted(MODELS), metavar="NAME",
                        help="model name from asr_bl.vision.MODELS, e.g. bl_resnet50, "
                             "bl_resnext101_32x4d_a2_b4, resnet50 (default: %(default)s)")
    parser.add_argument("--num-classes", type=int, default=d.num_classes,
                        help="classifier outputs; must equal the classes under train/ (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="cosine schedule length (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help="images per process per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=d.lr,
                        help="learning rate for a global batch of 256, scaled linearly (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=d.momentum, help="Nesterov momentum (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay, help="(default: %(default)s)")
    parser.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                        help="linear learning-rate warm-up before the cosine (default: %(default)s)")
    parser.add_argument("--crop-size", type=int, default=d.crop_size,
                        help="random-resized-crop size for training (default: %(default)s)")
    parser.add_argument("--eval-sizes", default=",".join(map(str, d.eval_sizes)),
                        help="comma-separated centre-crop sizes to evaluate at: the first one after "
                             "resizing to size/0.875 (224 <- 256) and selecting model_best, the others "
                             "after resizing to the size itself (the paper's @256) (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=d.workers,
                        help="data-loading processes per process (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    parser.add_argument("--no-amp", action="store_true", help="disable mixed precision on GPU")
    parser.add_argument("--evaluate", action="store_true",
                        help="only evaluate, at every --eval-sizes, the --weights file "
                             "(default: --out-dir/model_best.pth.tar)")
    parser.add_argument("--weights", default=None,
                        help="initial weights: an official bL-Net .pth.tar or model_best.pth.tar")
    parser.add_argument("--restart", action="store_true",
                        help="ignore (and overwrite) an existing checkpoint in --out-dir")
    parser.add_argument("--eval-every", type=int, default=d.eval_every,
                        help="epochs between evaluations (default: %(default)s)")
    parser.add_argument("--stop-after-epoch", type=int, default=None,
                        help="end this run after that epoch (checkpoint written), keeping the "
                             "--epochs schedule; rerun without it to continue, e.g. under job time limits")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        eval_sizes = tuple(int(s) for s in args.eval_sizes.split(",") if s.strip())
    except ValueError:
        raise SystemExit(f"--eval-sizes must be comma-separated integers, got {args.eval_sizes!r}") from None
    config = TrainConfig(
        data=args.data, out_dir=args.out_dir, arch=args.arch, num_classes=args.num_classes,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, crop_size=args.crop_size,
        eval_sizes=eval_sizes, workers=args.workers, seed=args.seed, amp=not args.no_amp,
        evaluate_only=args.evaluate, weights=args.weights, restart=args.restart,
        eval_every=args.eval_every, stop_after_epoch=args.stop_after_epoch,
    )
    try:
        results = train(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"asr_bl-imagenet: error: {error}") from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
