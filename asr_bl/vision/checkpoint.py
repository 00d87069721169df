"""Reading and writing checkpoints in the official bL-Net file layout.

The official ImageNet checkpoints (``*.pth.tar``) are ``torch.save`` files of a dict holding
``'state_dict'`` (saved from ``nn.DataParallel``, hence every key prefixed ``module.``) and
bookkeeping such as ``'epoch'``, ``'arch'`` and ``'best_top1'``. :func:`load_official` accepts that,
an unprefixed one, or a bare state_dict, and loads it strictly.
"""
import logging
import os
import pickle
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "load_official", "save_official", "strip_prefix"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
#: How many key names an error message lists before summarising the rest.
_LISTED_KEYS = 20


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's parameter names or shapes do not match the model's."""


def strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> Dict[str, Any]:
    """``state_dict`` with ``prefix`` removed from its keys, if *all* keys carry it."""
    keys = list(state_dict)
    if keys and all(k.startswith(prefix) for k in keys):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _listing(names: List[str]) -> str:
    shown = ", ".join(names[:_LISTED_KEYS])
    more = len(names) - _LISTED_KEYS
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _read(path: Path, trust_pickle: bool) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        # weights_only refuses arbitrary pickled objects: a checkpoint from the internet should
        # not be able to run code. The official files hold only tensors, numbers and strings.
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f"checkpoint {path} contains objects other than tensors/numbers/strings ({error}); "
            "if you trust its source, call load_official(..., trust_pickle=True)"
        ) from error


def load_official(
    model: nn.Module, path: PathLike, strict: bool = True, trust_pickle: bool = False
) -> Dict[str, Any]:
    """Load an official bL-Net checkpoint (or any file in its layout) into ``model``.

    Args:
        model: the matching architecture, e.g. ``bl_resnet50(alpha=2, beta=4)``.
        path: a ``.pth.tar`` holding ``{'state_dict': ...}`` (keys optionally ``module.``-prefixed)
            or a bare state_dict.
        strict: require exactly the model's keys (the default, and what the official files meet).
        trust_pickle: allow arbitrary pickled objects in the file (only for trusted files).

    Returns:
        The checkpoint's other entries (``epoch``, ``arch``, ``best_top1``, ...), if any.

    Raises:
        FileNotFoundError: ``path`` is missing.
        CheckpointMismatchError: missing/unexpected keys (with ``strict``) or mismatched shapes,
            naming them.
    """
    path = Path(path)
    checkpoint = _read(path, trust_pickle)
    extras: Dict[str, Any] = {}
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]
        extras = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "optimizer")}
    elif isinstance(checkpoint, Mapping) and all(torch.is_tensor(v) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise CheckpointMismatchError(
            f"{path} is neither a state_dict nor a dict with a 'state_dict' entry "
            f"(top-level keys: {_listing(sorted(map(str, checkpoint))) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__})"
        )
    state_dict = strip_prefix(state_dict, "module.")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} (checkpoint {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if strict and missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} shape mismatches: {_listing(wrong_shape)}")
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(problems)
            + ". Build the model with the checkpoint's configuration (depth, alpha, beta, "
            "cardinality, num_classes)."
        )
    model.load_state_dict(
        {k: v for k, v in state_dict.items() if k in expected}, strict=strict
    )
    logger.info("loaded %d tensors from %s", len(state_dict), path)
    return extras


def save_official(model: nn.Module, path: PathLike, **extras: Any) -> None:
    """Save ``model`` in the official layout: ``{'state_dict': {'module.' + key: tensor}, **extras}``.

    Written to a temporary name in the same directory and renamed, so an interrupted save never
    leaves a truncated checkpoint behind.
    """
    path = Path(path)
    state_dict = {f"module.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": state_dict, **extras}, tmp)
    os.replace(tmp, path)
