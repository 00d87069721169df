"""Training checkpoints: atomic writes, safe loading, the newest valid one, RNG states, averaging.

On-disk layout (inside a run directory ``exp/NAME``)::

    checkpoints/step-00001200.pt    every ``checkpoint_every`` optimiser steps (the last
                                    ``keep_step_checkpoints`` are kept)
    checkpoints/epoch-003.pt        at the end of each epoch (all kept: ``--avg N`` averages them)
    checkpoints/best.pt             the epoch checkpoint with the best dev frame accuracy so far

Each file is one ``torch.save`` of a dict of tensors, numbers, strings, lists and dicts only (the
RNG states included: numpy's and Python's are stored as lists of ints), written through
:func:`asr_bl.io.save_torch` (in-memory serialisation, then a temporary name, fsync, rename), so a
file under its final name is always complete, and a failed write (a full disk) leaves the previous
checkpoints as they were.
Loading never unpickles arbitrary objects (:func:`load_checkpoint` uses ``weights_only`` or, on
torch 1.13 whose weights-only unpickler rejects plain floats, the opcode check of
:mod:`asr_bl.vision.checkpoint`).
"""
import logging
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from asr_bl.io import Pathlike, save_torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "average_model_states",
    "checkpoint_sort_key",
    "epoch_checkpoints",
    "get_rng_state",
    "list_checkpoints",
    "load_checkpoint",
    "newest_valid_checkpoint",
    "safe_torch_load",
    "save_checkpoint",
    "set_rng_state",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "asr_bl.train.checkpoint/1"
_NAME = re.compile(r"^(step-(?P<step>\d+)|epoch-(?P<epoch>\d+))\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable, not ours, or belongs to another model."""


def safe_torch_load(path: Pathlike) -> Any:
    """``torch.load`` that refuses pickled code: tensors, numbers, strings and containers only.

    Raises ``RuntimeError`` naming the disallowed globals when the file holds anything else.
    """
    # The vision package's reader already implements the torch-1.13 fallback (an opcode scan that
    # admits only tensor-rebuilding globals); one implementation for the whole library.
    from asr_bl.vision.checkpoint import read_checkpoint

    return read_checkpoint(path, trust_pickle=False)


def get_rng_state() -> Dict[str, Any]:
    """Every RNG state of this process: torch (CPU and each CUDA device), numpy, Python ``random``,
    as tensors / lists of ints (safe to load without unpickling objects)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def _to_lists(obj: Any) -> Any:
    if isinstance(obj, (tuple, list)):
        return [_to_lists(x) for x in obj]
    return obj


def _to_tuples(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_to_tuples(x) for x in obj)
    return obj


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_sort_key(path: Path) -> Tuple[int, int]:
    """Order of recency: the global step stored in the name's place (step files) or the epoch
    (epoch files are compared by their ``global_step`` entry after loading; by name here)."""
    m = _NAME.match(path.name)
    if not m:
        return (-1, -1)
    if m.group("step") is not None:
        return (int(m.group("step")), 0)
    return (-1, int(m.group("epoch")))


def list_checkpoints(directory: Pathlike) -> List[Path]:
    """The step and epoch checkpoints in ``directory`` (not ``best.pt``), in no particular order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if _NAME.match(p.name)]


def epoch_checkpoints(directory: Pathlike) -> List[Path]:
    """``epoch-NNN.pt`` files of ``directory``, oldest epoch first."""
    found = [p for p in list_checkpoints(directory) if p.name.startswith("epoch-")]
    return sorted(found, key=lambda p: checkpoint_sort_key(p)[1])


def save_checkpoint(state: Dict[str, Any], path: Pathlike) -> None:
    """Write ``state`` (tagged with :data:`CHECKPOINT_FORMAT`) atomically and fsync'd.

    On any failure (e.g. ``OSError(ENOSPC)``) nothing appears under ``path`` and an existing file
    there is unchanged; the error propagates.
    """
    save_torch({"format": CHECKPOINT_FORMAT, **state}, path)


def load_checkpoint(path: Pathlike) -> Dict[str, Any]:
    """Load one of our checkpoints safely; ``CheckpointError`` when it is unreadable or not ours."""
    path = Path(path)
    try:
        state = safe_torch_load(path)
    except Exception as error:  # a truncated or corrupted file: report, let the caller skip it
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an asr_bl-train checkpoint (no format {CHECKPOINT_FORMAT!r})")
    return state


def newest_valid_checkpoint(directory: Pathlike) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """The checkpoint of ``directory`` with the largest ``global_step`` (an epoch-end checkpoint
    wins a tie over a step one) that loads, and its content; None when there is none.

    Unreadable files are skipped with a warning (atomic writes make them unlikely, but a disk
    error or a hand-copied file can still leave one).
    """
    candidates = []
    for path in list_checkpoints(directory):
        try:
            state = load_checkpoint(path)
        except CheckpointError as error:
            logger.warning("skipping %s", error)
            continue
        candidates.append((int(state["global_step"]), bool(state.get("epoch_done")), path, state))
    if not candidates:
        return None
    _, _, path, state = max(candidates, key=lambda c: (c[0], c[1]))
    return path, state


def average_model_states(states: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The element-wise mean of model state_dicts (floating tensors: parameters and BN statistics);
    integer tensors (BN's ``num_batches_tracked``) are taken from the last one."""
    if not states:
        raise ValueError("nothing to average")
    out: Dict[str, torch.Tensor] = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            acc = torch.zeros_like(last, dtype=torch.float64)
            for s in states:
                acc += s[key].to(torch.float64)
            out[key] = (acc / len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out
