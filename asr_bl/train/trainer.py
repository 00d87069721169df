"""Frame-level cross-entropy training of the acoustic models (the engine of ``asr_bl-train``).

Anatomy (as icefall's ``train.py``): :func:`compute_loss` (one batch), :func:`validate` (the dev
set), :func:`train_one_epoch`, and :func:`run` ``(rank, world_size, config)`` which sets up data,
model, optimiser and checkpoints. ``torchrun`` starts one process per device; every process calls
:func:`run` (the CLI does this).

Data, per optimiser step: the lhotse sampler of :func:`asr_bl.data.make_sampler` yields one global
sequence of *micro-batches* (``CutSet``s of ``batch_frames / (world_size * accum_steps)`` frames of
audio), identical in every process (same seed). Step ``s`` is micro-batches
``s*G .. s*G+G-1`` (``G = world_size * accum_steps``); process ``r`` takes the ``accum_steps`` of
them at ``s*G + r*accum_steps + a``. So 2 processes x 1 and 1 process x 2 accumulation
micro-batches see the same batches, and a resumed run skips exactly the steps already done. Only
complete steps are run (at most ``G - 1`` micro-batches per epoch are left out).
:class:`asr_bl.data.FrameLevelDataset` turns a micro-batch into dense chunks (``C + 48`` input
frames, ``C`` labels; -100 where neighbouring chunks overlap), in DataLoader worker processes
started with ``spawn``/``forkserver``.

Loss: the sum of per-frame cross-entropies divided by the *global* number of labelled frames of the
step (counted before the forward, summed over processes), times ``world_size`` because DDP averages
gradients: the gradient is that of the mean over the global batch whatever its split. BatchNorm
uses each micro-batch's own statistics (no SyncBatchNorm: it is CUDA-only on torch 1.13), so a
split changes the BN running statistics, not the gradients.

Checkpoints (:mod:`asr_bl.train.checkpoint`) hold model, optimiser, scheduler, scaler, the
sampler position (epoch, steps done in it), every process's RNG states, the dev history and the
config; ``resume`` continues from the newest valid one, bit-exactly on CPU for the same
``world_size * accum_steps``. A non-finite loss stops the run *before* the optimiser step, with
nothing written after the last good checkpoint (:class:`TrainingDiverged` names both).
"""
import contextlib
import hashlib
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from asr_bl.io import write_json
from asr_bl.train.checkpoint import (
    average_model_states,
    checkpoint_sort_key,
    epoch_checkpoints,
    get_rng_state,
    list_checkpoints,
    load_checkpoint,
    newest_valid_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from asr_bl.train.config import TrainConfig
from asr_bl.train.distributed import (
    DistContext,
    all_reduce_sum,
    autocast_dtype,
    broadcast_buffers,
    grad_scaler,
    init_distributed,
)
from asr_bl.train.model_dir import (
    ModelCard,
    count_model,
    log_priors_from_counts,
    read_pdf_counts,
    write_model_dir,
)

__all__ = [
    "BadInputError",
    "ResumeMismatchError",
    "StepSampler",
    "TrainingData",
    "TrainingDiverged",
    "compute_loss",
    "load_training_data",
    "run",
    "train_one_epoch",
    "validate",
]

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
BEST_NAME = "best.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
IGNORE = -100


class BadInputError(ValueError):
    """Input data that cannot be trained on (the message names the file and the fix)."""


class ResumeMismatchError(BadInputError):
    """A checkpoint in the run dir belongs to another model (preset, width or num_pdfs)."""


class TrainingDiverged(RuntimeError):
    """A non-finite loss: the run stopped before updating the weights with it."""


# ----------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """The checked inputs of a run: cuts, CMVN statistics, feature config, targets' size and priors."""

    train_cuts: Any
    dev_cuts: Any
    train_cmvn: Any
    dev_cmvn: Any
    feature_config: Any
    num_pdfs: int
    pdf_counts: np.ndarray
    tree: Path
    train_frames: int
    dev_frames: int


def _stable_hash(text: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{text}".encode()).digest()[:8], "little")


def _frames(cut, feature_config) -> int:
    from asr_bl.features import cut_num_frames

    return cut_num_frames(cut, feature_config)


def _subset(cuts: List[Any], max_frames: int, seed: int, feature_config) -> List[Any]:
    """At most ``max_frames`` frames of whole cuts, chosen by a seeded hash of the cut ids (stable
    under reordering of the manifest), in the manifest's order."""
    if max_frames <= 0:
        return cuts
    order = sorted(range(len(cuts)), key=lambda i: _stable_hash(cuts[i].id, seed))
    keep, total = set(), 0
    for i in order:
        n = _frames(cuts[i], feature_config)
        if total + n > max_frames and keep:
            continue
        keep.add(i)
        total += n
        if total >= max_frames:
            break
    return [c for i, c in enumerate(cuts) if i in keep]


def _check_aligned(cuts: Sequence[Any], path: str, feature_config, num_pdfs: int) -> int:
    """Every cut has ``pdf_ali`` of one label per frame; returns the number of frames."""
    missing = [c.id for c in cuts if not c.has_custom("pdf_ali")]
    if missing:
        raise BadInputError(
            f"{path}: {len(missing)} of {len(cuts)} cuts have no 'pdf_ali' alignment (e.g. {missing[0]}); "
            "train on the aligned cuts the GMM stage writes (asr_bl-gmm align --out-dir exp/tri2_ali: "
            "exp/tri2_ali/<corpus>_cuts_train.jsonl.gz)")
    total = 0
    for cut in cuts:
        expected = _frames(cut, feature_config)
        got = cut.custom["pdf_ali"].shape[0]
        if got != expected:
            raise BadInputError(
                f"{path}: cut {cut.id} has {got} alignment frames but {expected} feature frames; the "
                "alignment was made on another frame grid or for other features: re-run the alignment "
                "(asr_bl-gmm align) on these features")
        total += expected
    return total


def _feature_part(feature_dir: Path, cuts_path: str) -> Tuple[str, str]:
    """(corpus, part) from a manifest name ``<corpus>_cuts_<part>.jsonl.gz``."""
    name = Path(cuts_path).name
    stem = name.split(".")[0]
    if "_cuts_" not in stem:
        raise BadInputError(
            f"{cuts_path}: cannot tell the feature part from the name (expected <corpus>_cuts_<part>.jsonl.gz, "
            f"as asr_bl-features writes into {feature_dir})")
    corpus, _, part = stem.partition("_cuts_")
    return corpus, part


def _load_cuts(path: str, what: str):
    from lhotse import CutSet, load_manifest

    if not path:
        raise BadInputError(f"no {what} given; pass --{what.replace('_', '-')} FILE")
    if not Path(path).is_file():
        raise BadInputError(f"{path}: {what} manifest not found")
    cuts = load_manifest(path)
    if not isinstance(cuts, CutSet):
        raise BadInputError(f"{path}: not a CutSet manifest")
    return cuts


def load_training_data(config: TrainConfig) -> TrainingData:
    """Load and check everything before any output is written (:class:`BadInputError` otherwise)."""
    from lhotse import CutSet

    from asr_bl.features import CmvnStats, FbankConfig, feature_paths

    ali_dir = Path(config.ali_dir)
    if not config.ali_dir or not ali_dir.is_dir():
        raise BadInputError(f"{ali_dir}: alignment dir not found; pass --ali-dir exp/tri2_ali (asr_bl-gmm align)")
    tree = ali_dir / "tree"
    counts_path = ali_dir / "pdf_counts"
    for path in (tree, counts_path):
        if not path.is_file():
            raise BadInputError(f"{path} not found; the alignment dir must hold tree, pdf_counts and num_pdfs "
                                "(written by asr_bl-gmm align)")
    try:
        counts = read_pdf_counts(counts_path)
    except ValueError as error:
        raise BadInputError(str(error)) from error
    num_pdfs = int(counts.shape[0])
    num_pdfs_file = ali_dir / "num_pdfs"
    if num_pdfs_file.is_file():
        declared = int(num_pdfs_file.read_text().split()[0])
        if declared != num_pdfs:
            raise BadInputError(f"{num_pdfs_file} says {declared} pdfs but {counts_path} has {num_pdfs} counts; "
                                "the alignment dir is inconsistent: re-run asr_bl-gmm align")

    feature_dir = Path(config.feature_dir)
    corpus, part = _feature_part(feature_dir, config.cuts)
    paths = feature_paths(feature_dir, corpus, part)
    for key in ("cmvn", "config"):
        if not paths[key].is_file():
            raise BadInputError(f"{paths[key]} not found; pass --feature-dir where asr_bl-features wrote the "
                                f"'{part}' features of {corpus}")
    feature_config = FbankConfig.from_dict(json.loads(paths["config"].read_text()))
    train_cmvn = CmvnStats.load(paths["cmvn"])

    train_all = list(_load_cuts(config.cuts, "cuts"))
    if config.dev_cuts:
        dev_list = list(_load_cuts(config.dev_cuts, "dev_cuts"))
        dcorpus, dpart = _feature_part(feature_dir, config.dev_cuts)
        dev_paths = feature_paths(feature_dir, dcorpus, dpart)
        if not dev_paths["cmvn"].is_file():
            raise BadInputError(f"{dev_paths['cmvn']} not found; "
                                f"compute the '{dpart}' features first (asr_bl-features)")
        dev_cmvn = CmvnStats.load(dev_paths["cmvn"])
        train_list = train_all
        dev_name = config.dev_cuts
    elif config.dev_holdout_recordings > 0:
        recordings = sorted({c.recording_id for c in train_all}, key=lambda r: _stable_hash(r, config.seed))
        held = set(recordings[: config.dev_holdout_recordings])
        if len(held) >= len(recordings):
            raise BadInputError(f"{config.cuts}: --dev-holdout-recordings {config.dev_holdout_recordings} leaves no "
                                f"training recordings (there are {len(recordings)})")
        dev_list = [c for c in train_all if c.recording_id in held]
        train_list = [c for c in train_all if c.recording_id not in held]
        dev_cmvn = train_cmvn
        dev_name = f"{config.cuts} (held-out recordings)"
    else:
        raise BadInputError("no dev set: pass --dev-cuts FILE (cuts with pdf_ali) or --dev-holdout-recordings N")
    if not train_list:
        raise BadInputError(f"{config.cuts}: no training cuts")
    if not dev_list:
        raise BadInputError(f"{dev_name}: the dev set is empty; "
                            "pass a non-empty --dev-cuts or --dev-holdout-recordings N")
    train_list = _subset(train_list, config.max_train_frames, config.seed, feature_config)
    dev_list = _subset(dev_list, config.max_dev_frames, config.seed, feature_config)
    train_frames = _check_aligned(train_list, config.cuts, feature_config, num_pdfs)
    dev_frames = _check_aligned(dev_list, dev_name, feature_config, num_pdfs)
    return TrainingData(
        CutSet.from_cuts(train_list), CutSet.from_cuts(dev_list), train_cmvn, dev_cmvn, feature_config,
        num_pdfs, counts, tree, train_frames, dev_frames)


class StepSampler(torch.utils.data.Sampler):
    """This process's micro-batches of the global sequence (see the module docstring).

    Wraps a lhotse sampler that yields the *global* sequence (world_size 1, the same seed in every
    process). Yields ``accum_steps`` ``CutSet``s per step, only for complete steps, after skipping
    the first ``skip_steps`` steps of the epoch (resume). Iterating it reads cut metadata only.
    """

    def __init__(self, sampler, world_size: int = 1, rank: int = 0, accum_steps: int = 1) -> None:
        self.sampler = sampler
        self.world_size = world_size
        self.rank = rank
        self.accum_steps = accum_steps
        self.skip_steps = 0

    def set_epoch(self, epoch: int, skip_steps: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip_steps = skip_steps

    def __iter__(self) -> Iterator[Any]:
        group = self.world_size * self.accum_steps
        mine = range(self.rank * self.accum_steps, (self.rank + 1) * self.accum_steps)
        pending: List[Any] = []
        step = 0
        for batch in self.sampler:
            pending.append(batch)
            if len(pending) < group:
                continue
            if step >= self.skip_steps:
                for i in mine:
                    yield pending[i]
            pending = []
            step += 1


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _make_loader(dataset, sampler, config: TrainConfig):
    kwargs: Dict[str, Any] = {}
    if config.num_workers > 0:
        import multiprocessing

        kwargs = dict(num_workers=config.num_workers,
                      multiprocessing_context=multiprocessing.get_context(config.mp_context),
                      worker_init_fn=_worker_init, persistent_workers=False)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, **kwargs)


# ----------------------------------------------------------------------------- the pieces


def compute_loss(
    model: nn.Module,
    batch: Dict[str, Any],
    device: torch.device,
    num_pdfs: int,
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> Tuple[torch.Tensor, int, int]:
    """Summed cross-entropy of one batch of chunks, its labelled frames and correct frames.

    ``batch``: :class:`asr_bl.data.FrameLevelDataset`'s ``{"inputs": (N, 3, F, C + 48) float32,
    "targets": (N, C) int64 (-100 = not labelled here)}``. Returns ``(loss_sum (float32 scalar,
    with grad), num_labelled, num_correct)``.
    """
    inputs = batch["inputs"].to(device, non_blocking=True)
    targets = batch["targets"].to(device, non_blocking=True)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    valid = targets != IGNORE
    if valid.any():
        top = int(targets[valid].max())
        if top >= num_pdfs or int(targets[valid].min()) < 0:
            raise BadInputError(
                f"pdf label {top} in cuts {sorted(set(batch['cut_ids']))[:3]} is outside [0, {num_pdfs}): the "
                "alignments were made with another tree than the alignment dir's pdf_counts")
    autocast = (torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    with autocast:
        logits = model(inputs)  # (N, C, num_pdfs)
    logits = logits.float().reshape(-1, logits.shape[-1])
    flat = targets.reshape(-1)
    loss_sum = nn.functional.cross_entropy(logits, flat, ignore_index=IGNORE, reduction="sum")
    with torch.no_grad():
        correct = int((logits.argmax(dim=-1) == flat)[flat != IGNORE].sum())
    return loss_sum, int(valid.sum()), correct


@torch.no_grad()
def validate(
    model: nn.Module,
    data: TrainingData,
    config: TrainConfig,
    ctx: DistContext,
    device: torch.device,
    amp_dtype: Optional[torch.dtype] = None,
) -> Dict[str, float]:
    """Dev frame accuracy (percent) and cross-entropy (nats per frame), exact over all dev frames.

    Eval mode (BN on running statistics), so each utterance's chunked forward equals its
    whole-utterance forward; every frame is labelled exactly once. Process ``r`` takes every
    ``world_size``-th cut; the counts are summed over processes.
    """
    from lhotse import CutSet

    from asr_bl.data import FrameDataConfig, FrameLevelDataset, make_sampler

    cuts = CutSet.from_cuts(list(data.dev_cuts)[ctx.rank :: ctx.world_size])
    dataset = FrameLevelDataset(
        FrameDataConfig(chunk_frames=config.dev_chunk_frames, random_offset=False),
        feature_config=data.feature_config, cmvn_stats=data.dev_cmvn)
    totals = [0.0, 0.0, 0.0]
    was_training = model.training
    model.eval()
    if len(cuts):
        sampler = make_sampler(cuts, max_duration=60.0, shuffle=False, world_size=1, rank=0, num_buckets=None)
        for batch in _make_loader(dataset, sampler, config):
            loss_sum, n, correct = compute_loss(model, batch, device, data.num_pdfs, amp_dtype)
            totals[0] += float(loss_sum)
            totals[1] += n
            totals[2] += correct
    model.train(was_training)
    loss, frames, correct = all_reduce_sum(totals, ctx, device)
    frames = max(frames, 1.0)
    return {"ce": loss / frames, "frame_acc": 100.0 * correct / frames, "frames": int(frames)}


@dataclass
class _State:
    """What a checkpoint restores besides the modules."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_dev_acc: float = -1.0
    best_epoch: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)
    epoch_totals: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # loss, frames, correct, seconds
    last_checkpoint: Optional[str] = None


class _Run:
    """The objects of one run, passed to :func:`train_one_epoch`."""

    def __init__(self, config, ctx, device, model, net, optimizer, scheduler, scaler, amp_dtype,
                 channels_last, data, out_dir, writer):
        self.config, self.ctx, self.device = config, ctx, device
        self.model, self.net, self.optimizer, self.scheduler, self.scaler = model, net, optimizer, scheduler, scaler
        self.amp_dtype, self.channels_last, self.data, self.out_dir, self.writer = (
            amp_dtype, channels_last, data, out_dir, writer)
        self.state = _State()

    # -- checkpoints
    def checkpoint_state(self, epoch_done: bool) -> Dict[str, Any]:
        rng = [get_rng_state()]
        if self.ctx.enabled:
            gathered: List[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        st = self.state
        return {
            "preset": self.config.model, "width": self.config.width, "num_pdfs": self.data.num_pdfs,
            "model_state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": st.epoch, "step_in_epoch": st.step_in_epoch, "global_step": st.global_step,
            "epoch_done": epoch_done, "epoch_totals": list(st.epoch_totals),
            "best_dev_acc": st.best_dev_acc, "best_epoch": st.best_epoch, "history": st.history,
            "rng": rng, "world_size": self.ctx.world_size, "accum_steps": self.config.accum_steps,
            "config": self.config.to_dict(),
        }

    def save(self, name: str, epoch_done: bool, best: bool = False) -> None:
        """Gather (collective), then rank 0 writes ``checkpoints/name`` (and ``best.pt``)."""
        state = self.checkpoint_state(epoch_done)
        if self.ctx.is_main:
            directory = self.out_dir / CHECKPOINT_DIR
            path = directory / name
            try:
                save_checkpoint(state, path)
                if best:
                    save_checkpoint(state, directory / BEST_NAME)
            except OSError as error:
                kept = self.state.last_checkpoint or "none (no checkpoint was written before)"
                raise OSError(error.errno, f"writing checkpoint {path} failed ({error.strerror or error}); "
                              f"the previous checkpoint {kept} is intact: "
                              "free space and rerun with --resume") from error
            self.state.last_checkpoint = str(path)
            if not epoch_done:
                steps = sorted((p for p in list_checkpoints(directory) if p.name.startswith("step-")),
                               key=checkpoint_sort_key)
                for old in steps[: max(0, len(steps) - self.config.keep_step_checkpoints)]:
                    old.unlink()
        if self.ctx.enabled:
            dist.barrier()

    def restore(self, path: Path, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        st = self.state
        st.epoch, st.step_in_epoch, st.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        st.epoch_totals = list(state.get("epoch_totals", st.epoch_totals))
        st.best_dev_acc, st.best_epoch = state["best_dev_acc"], state["best_epoch"]
        st.history = list(state["history"])
        st.last_checkpoint = str(path)
        rng = state.get("rng") or []
        if len(rng) == self.ctx.world_size:
            set_rng_state(rng[self.ctx.rank])
        elif self.ctx.is_main:
            logger.warning("%s holds RNG states of %d processes, this run has %d: RNG states not restored",
                           path, len(rng), self.ctx.world_size)


def _steps_estimate(data: TrainingData, config: TrainConfig) -> int:
    return max(1, data.train_frames // config.batch_frames)


def train_one_epoch(run_: "_Run", loader, epoch: int) -> Dict[str, float]:
    """Train ``epoch`` (0-based) from ``run_.state.step_in_epoch`` on; returns the epoch's train metrics.

    Raises :class:`TrainingDiverged` on a non-finite loss (before the optimiser step).
    """
    from tqdm import tqdm

    cfg, ctx, device, st = run_.config, run_.ctx, run_.device, run_.state
    run_.net.train()
    accum = cfg.accum_steps
    params = [p for p in run_.model.parameters() if p.requires_grad]
    started = time.time()
    seconds_before = st.epoch_totals[3]
    progress = tqdm(total=_steps_estimate(run_.data, cfg), initial=st.step_in_epoch,
                    desc=f"epoch {epoch + 1}/{cfg.epochs}",
                    disable=not (ctx.is_main and cfg.progress), leave=False, unit="step")
    iterator = iter(loader)
    while True:
        micro = []
        try:
            for _ in range(accum):
                micro.append(next(iterator))
        except StopIteration:
            break
        step_t0 = time.time()
        counts = [float(int((b["targets"] != IGNORE).sum())) for b in micro]
        global_frames = all_reduce_sum([sum(counts)], ctx, device)[0]
        run_.optimizer.zero_grad(set_to_none=True)
        step_loss, step_correct = 0.0, 0
        for i, batch in enumerate(micro):
            sync = (i == accum - 1) or not ctx.enabled
            guard = contextlib.nullcontext() if sync else run_.net.no_sync()
            with guard:
                loss_sum, n, correct = compute_loss(run_.net, batch, device, run_.data.num_pdfs,
                                                    run_.amp_dtype, run_.channels_last)
                if cfg.fault_nan_step and st.global_step + 1 == cfg.fault_nan_step:
                    loss_sum = loss_sum * float("nan")
                loss = loss_sum * (ctx.world_size / max(global_frames, 1.0))
                run_.scaler.scale(loss).backward()
            step_loss += float(loss_sum.detach())
            step_correct += correct
        step_loss, step_correct = all_reduce_sum([step_loss, float(step_correct)], ctx, device)
        if not math.isfinite(step_loss):
            kept = st.last_checkpoint or "none (no checkpoint had been written yet)"
            raise TrainingDiverged(
                f"non-finite loss ({step_loss}) at global step {st.global_step + 1} (epoch {epoch + 1}, step "
                f"{st.step_in_epoch + 1} of the epoch); stopped before updating the weights, nothing written "
                f"after the last good checkpoint {kept}; lower --lr or check the inputs, then rerun with --resume")
        factor = cfg.step_lr_factor(st.global_step, _steps_estimate(run_.data, cfg))
        if factor is not None:
            for group in run_.optimizer.param_groups:
                group["lr"] = cfg.scaled_lr() * factor
        run_.scaler.unscale_(run_.optimizer)
        grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm))
        run_.scaler.step(run_.optimizer)
        run_.scaler.update()
        st.global_step += 1
        st.step_in_epoch += 1
        elapsed = time.time() - step_t0
        st.epoch_totals[0] += step_loss
        st.epoch_totals[1] += global_frames
        st.epoch_totals[2] += step_correct
        st.epoch_totals[3] = seconds_before + (time.time() - started)
        if run_.writer is not None:
            lr = run_.optimizer.param_groups[0]["lr"]
            w = run_.writer
            w.add_scalar("train/loss", step_loss / max(global_frames, 1.0), st.global_step)
            w.add_scalar("train/frame_acc", 100.0 * step_correct / max(global_frames, 1.0), st.global_step)
            w.add_scalar("train/lr", lr, st.global_step)
            w.add_scalar("train/grad_norm", grad_norm, st.global_step)
            w.add_scalar("train/frames_per_s", global_frames / max(elapsed, 1e-9), st.global_step)
        progress.update(1)
        if ctx.is_main and cfg.progress:
            progress.set_postfix(loss=f"{step_loss / max(global_frames, 1.0):.3f}")
        if st.global_step % cfg.checkpoint_every == 0:
            run_.save(f"step-{st.global_step:08d}.pt", epoch_done=False)
        if cfg.stop_after_steps and st.global_step >= cfg.stop_after_steps:
            break
    progress.close()
    loss, frames, correct, seconds = st.epoch_totals
    frames = max(frames, 1.0)
    return {"ce": loss / frames, "frame_acc": 100.0 * correct / frames, "frames": int(frames),
            "frames_per_s": frames / max(seconds, 1e-9), "seconds": round(seconds, 2)}


# ----------------------------------------------------------------------------- run


def _device(config: TrainConfig, ctx: DistContext) -> torch.device:
    if config.device == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        name = config.device
    if name == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return torch.device(name)


def _check_resume(path: Path, state: Dict[str, Any], config: TrainConfig, num_pdfs: int, ctx: DistContext) -> None:
    theirs = (state.get("preset"), state.get("width"), state.get("num_pdfs"))
    ours = (config.model, config.width, num_pdfs)
    if theirs != ours:
        raise ResumeMismatchError(
            f"{path} is a checkpoint of {theirs[0]} width {theirs[1]} with {theirs[2]} pdfs, not {ours[0]} width "
            f"{ours[1]} with {ours[2]} pdfs; use another --out-dir, or --restart to discard it")
    if not state["epoch_done"]:
        group_then = int(state.get("world_size", 1)) * int(state.get("accum_steps", 1))
        group_now = ctx.world_size * config.accum_steps
        if group_then != group_now:
            raise ResumeMismatchError(
                f"{path} was written mid-epoch by {state.get('world_size')} processes x {state.get('accum_steps')} "
                f"accumulation steps; resume it with processes x --accum-steps = {group_then} (now {group_now}), "
                "so the remaining batches are the same")
    saved = TrainConfig.from_dict(state.get("config", {})).to_dict()
    changed = [k for k, v in config.to_dict().items()
               if k not in TrainConfig.RUNTIME_FIELDS and k not in ("avg", "accum_steps") and saved.get(k) != v]
    if changed and ctx.is_main:
        logger.warning("resuming %s with changed settings %s: the result differs from an uninterrupted run",
                       path, ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(config, k)!r}" for k in changed))


def _export(run_: "_Run", data: TrainingData) -> Path:
    """Write the model dir (rank 0): last epoch's weights or the mean of the last ``avg`` epochs'."""
    cfg = run_.config
    directory = run_.out_dir / CHECKPOINT_DIR
    epochs = epoch_checkpoints(directory)
    if cfg.avg > 1:
        chosen = epochs[-cfg.avg:]
        if len(chosen) < cfg.avg:
            logger.warning("--avg %d: only %d epoch checkpoints exist; averaging those", cfg.avg, len(chosen))
        states = [load_checkpoint(p)["model_state"] for p in chosen]
        weights = average_model_states(states)
        averaged = [p.name for p in chosen]
    else:
        weights = {k: v.detach().cpu() for k, v in run_.model.state_dict().items()}
        averaged = []
    from asr_bl.stage import fingerprint

    counted = count_model(cfg.model, cfg.width, data.num_pdfs)
    history = run_.state.history
    card = ModelCard(
        preset=cfg.model, width=cfg.width, num_pdfs=data.num_pdfs,
        tree_fingerprint=fingerprint(data.tree)["sha1"], feature_config=data.feature_config.to_dict(),
        macs=counted["macs"], params=counted["params"],
        train={
            "epochs": cfg.epochs, "global_steps": run_.state.global_step, "averaged": averaged,
            "best_epoch": run_.state.best_epoch, "best_dev_frame_acc": run_.state.best_dev_acc,
            "final_dev": history[-1]["dev"] if history else None,
            "train_frames": data.train_frames, "dev_frames": data.dev_frames,
            "batch_frames": cfg.batch_frames, "lr": cfg.scaled_lr(), "lr_scaling": cfg.lr_scaling,
            "chunk_frames": cfg.chunk_frames, "cuts": cfg.cuts, "dev_cuts": cfg.dev_cuts or None,
            "world_size": run_.ctx.world_size,
        },
    )
    priors = log_priors_from_counts(data.pdf_counts, cfg.prior_floor)
    return write_model_dir(run_.out_dir, weights, card, priors, data.tree)


def run(rank: int, world_size: int, config: TrainConfig, restart: bool = False) -> Dict[str, Any]:
    """Train as ``config`` says in process ``rank`` of ``world_size`` (started by ``torchrun``, which
    also sets ``MASTER_ADDR``/``MASTER_PORT``); resumes from the newest valid checkpoint in
    ``config.out_dir`` unless ``restart``. Returns the run summary (rank 0: the model dir written).
    """
    if world_size > 1:
        os.environ.setdefault("WORLD_SIZE", str(world_size))
        os.environ.setdefault("RANK", str(rank))
    device_hint = "cuda" if (config.device in ("auto", "cuda") and torch.cuda.is_available()) else "cpu"
    ctx = init_distributed(device_hint)
    try:
        return _run(config, ctx, restart)
    finally:
        if ctx.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _run(config: TrainConfig, ctx: DistContext, restart: bool) -> Dict[str, Any]:
    from asr_bl.data import FrameDataConfig, FrameLevelDataset, make_sampler
    from asr_bl.models import build_model

    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    # lhotse warns once per batch when a single cut exceeds the micro-batch duration (it is then a
    # batch of its own, as intended here), and about eager CutSets (ours are a few MB of metadata).
    warnings.filterwarnings("ignore", message="We have exceeded the max_duration constraint")
    warnings.filterwarnings("ignore", message="You are using DynamicBucketingSampler with an eagerly read CutSet")
    device = _device(config, ctx)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    use_amp = config.amp if config.amp is not None else device.type == "cuda"
    amp_dtype = autocast_dtype(device) if use_amp else None
    channels_last = config.channels_last if config.channels_last is not None else device.type == "cuda"

    data = load_training_data(config)
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / CHECKPOINT_DIR

    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=data.num_pdfs, width=config.width)
    out_features = model.config.num_classes
    if out_features != data.num_pdfs:
        raise BadInputError(f"{config.model} has {out_features} outputs but the alignment has {data.num_pdfs} pdfs")
    model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    base_lr = config.scaled_lr()
    optimizer = torch.optim.SGD(model.parameters(), lr=base_lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda epoch: config.lr_factor(epoch))
    scaler = grad_scaler(amp_dtype == torch.float16)

    found = None if restart else newest_valid_checkpoint(ckpt_dir)
    if found is not None:
        _check_resume(found[0], found[1], config, data.num_pdfs, ctx)
    if ctx.enabled:
        dist.barrier()
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if restart and ckpt_dir.is_dir():
            for old in list_checkpoints(ckpt_dir) + [ckpt_dir / BEST_NAME]:
                old.unlink(missing_ok=True)
            (out_dir / METRICS_NAME).unlink(missing_ok=True)
        write_json(out_dir / CONFIG_NAME, {"config": config.to_dict(), "world_size": ctx.world_size,
                                           "base_lr": base_lr, "device": str(device), "amp": str(amp_dtype),
                                           "channels_last": channels_last, "train_frames": data.train_frames,
                                           "dev_frames": data.dev_frames, "num_pdfs": data.num_pdfs})
        logger.info("config (merged): %s", config.to_dict())
        logger.info("%s width %g: %d pdfs, %d train frames (%d cuts), %d dev frames (%d cuts), %d processes, "
                    "global batch %d frames, lr %.4g (%s scaling from %d), %d epochs, device %s, amp %s",
                    config.model, config.width, data.num_pdfs, data.train_frames, len(data.train_cuts),
                    data.dev_frames, len(data.dev_cuts), ctx.world_size, config.batch_frames, base_lr,
                    config.lr_scaling, config.reference_batch_frames, config.epochs, device, amp_dtype)

    net: nn.Module = model
    writer = None
    run_ = _Run(config, ctx, device, model, net, optimizer, scheduler, scaler, amp_dtype, channels_last, data,
                out_dir, writer)
    if found is not None:
        run_.restore(*found)
        if ctx.is_main:
            logger.info("resuming from %s (epoch %d, step %d of the epoch, global step %d)", found[0],
                        run_.state.epoch + 1, run_.state.step_in_epoch, run_.state.global_step)
    if ctx.enabled:
        run_.net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if ctx.is_main and config.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            run_.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=run_.state.global_step + 1)
        except ImportError:
            logger.warning("tensorboard is not installed: no tensorboard scalars (pip install tensorboard)")

    dataset = FrameLevelDataset(
        FrameDataConfig(chunk_frames=config.chunk_frames, seed=config.seed, spec_augment=config.spec_augment),
        feature_config=data.feature_config, cmvn_stats=data.train_cmvn)
    group = ctx.world_size * config.accum_steps
    micro_seconds = config.batch_frames * data.feature_config.frame_shift / group
    global_sampler = make_sampler(data.train_cuts, max_duration=micro_seconds, shuffle=True, world_size=1, rank=0,
                                  seed=config.seed, num_buckets=config.num_buckets or None)
    sampler = StepSampler(global_sampler, ctx.world_size, ctx.rank, config.accum_steps)

    st = run_.state
    status = "finished"
    try:
        while st.epoch < config.epochs:
            epoch = st.epoch
            if st.step_in_epoch == 0:
                st.epoch_totals = [0.0, 0.0, 0.0, 0.0]
            sampler.set_epoch(epoch, skip_steps=st.step_in_epoch)
            dataset.set_epoch(epoch)
            train_metrics = train_one_epoch(run_, _make_loader(dataset, sampler, config), epoch)
            if config.stop_after_steps and st.global_step >= config.stop_after_steps:
                run_.save(f"step-{st.global_step:08d}.pt", epoch_done=False)
                status = "stopped"
                break
            broadcast_buffers(model, ctx)
            dev = validate(model, data, config, ctx, device, amp_dtype)
            lr = optimizer.param_groups[0]["lr"]
            record = {"epoch": epoch + 1, "global_step": st.global_step, "lr": lr, "train": train_metrics, "dev": dev}
            st.history.append(record)
            is_best = dev["frame_acc"] > st.best_dev_acc
            if is_best:
                st.best_dev_acc, st.best_epoch = dev["frame_acc"], epoch + 1
            scheduler.step()
            st.epoch += 1
            st.step_in_epoch = 0
            if ctx.is_main:
                logger.info("epoch %d: lr %.4g | train ce %.4f acc %.2f%% (%d frames, %.0f frames/s) | dev ce %.4f "
                            "acc %.2f%% (%d frames)%s", epoch + 1, lr, train_metrics["ce"], train_metrics["frame_acc"],
                            train_metrics["frames"], train_metrics["frames_per_s"], dev["ce"], dev["frame_acc"],
                            dev["frames"], " best" if is_best else "")
                if run_.writer is not None:
                    for k in ("ce", "frame_acc"):
                        run_.writer.add_scalar(f"dev/{k}", dev[k], st.global_step)
                        run_.writer.add_scalar(f"epoch_train/{k}", train_metrics[k], st.global_step)
                with open(out_dir / METRICS_NAME, "a") as f:  # a log, appended per epoch (not an output)
                    f.write(json.dumps(record) + "\n")
            run_.save(f"epoch-{epoch + 1:03d}.pt", epoch_done=True, best=is_best)
    finally:
        if run_.writer is not None:
            run_.writer.close()
    summary: Dict[str, Any] = {"status": status, "epochs_done": st.epoch, "global_step": st.global_step,
                               "history": st.history, "best_epoch": st.best_epoch,
                               "last_checkpoint": st.last_checkpoint}
    if status == "finished" and ctx.is_main:
        summary["model_dir"] = str(_export(run_, data))
        logger.info("model dir written: %s", out_dir)
    if ctx.enabled:
        dist.barrier()
    return summary
