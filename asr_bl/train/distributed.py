"""Process-group, mixed-precision and schedule-position helpers shared by every trainer.

Used by the speech trainer (:mod:`asr_bl.train.trainer`) and the ImageNet trainer
(:mod:`asr_bl.vision.train`). Multi-process runs are started by ``torchrun``, which sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the backend is NCCL on CUDA and gloo on CPU.
Nothing here imports lhotse or a Kaldi binding.
"""
import logging
import os
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistContext",
    "all_reduce_sum",
    "autocast_dtype",
    "broadcast_buffers",
    "grad_scaler",
    "init_distributed",
    "resumed_step",
]

logger = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process sits in the job: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when there is more than one process (collectives are needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0


def init_distributed(device_type: str) -> DistContext:
    """Join the ``torchrun`` process group (NCCL for ``"cuda"``, gloo otherwise), or return the
    single-process context when ``WORLD_SIZE`` is unset or 1. The caller destroys the group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(values: List[float], ctx: DistContext, device: torch.device) -> List[float]:
    """``values`` summed over all processes (float64), unchanged in a single process."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics).

    DDP syncs buffers at the start of each training forward, so after the last step each process
    holds its own batch's update; evaluating with those would make the distributed result differ
    from evaluating the saved (rank-0) weights.
    """
    if ctx.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def grad_scaler(enabled: bool):
    """A CUDA ``GradScaler`` (a no-op when ``enabled`` is False): torch >= 2.3 has the
    device-generic class, torch 1.13 only the CUDA one."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision dtype for ``device``: bfloat16 where the GPU supports it (no loss
    scaling needed), else float16 (use :func:`grad_scaler`)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def resumed_step(
    epochs_done: int,
    steps_per_epoch: int,
    saved_step: int,
    saved_world_size: Optional[int],
    saved_batch: Optional[object],
    world_size: int,
    batch: object,
    source: object,
    total_steps: Optional[int] = None,
    log: Optional[logging.Logger] = None,
    warn: bool = True,
) -> int:
    """The schedule position to continue from after resuming at an epoch boundary.

    It is the number of epochs done in *this* run's steps per epoch: the saved step count is in
    the old run's units when the world size or the batch size has changed, and a per-step schedule
    (e.g. cosine) would then be left unfinished (or overrun) at the last epoch. A change is logged
    as a warning on ``log`` (naming ``source``, the checkpoint) when ``warn`` (rank 0).
    """
    step = epochs_done * steps_per_epoch
    log = log or logger
    changed_batch = saved_batch is not None and saved_batch != batch
    changed_world = saved_world_size is not None and saved_world_size != world_size
    if warn and (changed_batch or changed_world):
        log.warning(
            "%s was written with %s processes x batch %s, resuming with %d x %s: the schedule "
            "continues from epoch %d (step %d of %s, was step %d), the learning rate follows the "
            "new global batch", source, saved_world_size, saved_batch, world_size, batch, epochs_done,
            step, total_steps if total_steps is not None else "?", saved_step)
    return step
