"""Reading and writing checkpoints in the official bL-Net file layout.

The official ImageNet checkpoints (``*.pth.tar``) are ``torch.save`` files of a dict holding
``'state_dict'`` (saved from ``nn.DataParallel``, hence every key prefixed ``module.``) and
bookkeeping such as ``'epoch'``, ``'arch'`` and ``'best_top1'``. :func:`load_official` accepts that,
an unprefixed one, or a bare state_dict, and loads it strictly.
"""
import logging
import os
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import IO, Any, Dict, List, Mapping, Union

import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "load_official", "read_checkpoint", "save_official", "strip_prefix"]

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


#: The only globals a weights file needs: tensor rebuilding, storages, ordered dicts.
_ALLOWED_GLOBALS = {
    "collections OrderedDict",
    "torch._utils _rebuild_tensor_v2",
    "torch._utils _rebuild_parameter",
    "torch Size",
    "torch device",
}
#: A legacy (pre-zip) torch file is a run of pickles: magic, protocol, sys info, object, keys.
_LEGACY_PICKLES = 5


def _globals_in_pickles(stream: IO[bytes], count: int) -> List[str]:
    """The globals referenced by the next ``count`` pickles of ``stream`` (opcodes only, nothing
    is executed). A global pushed from the stack (protocol 4) cannot be named statically and is
    reported as ``'<stack global>'``."""
    found: List[str] = []
    for _ in range(count):
        try:
            for opcode, arg, _pos in pickletools.genops(stream):
                if opcode.name in ("GLOBAL", "INST"):
                    found.append(str(arg))
                elif opcode.name == "STACK_GLOBAL":
                    found.append("<stack global>")
                elif opcode.name in ("EXT1", "EXT2", "EXT4"):  # copyreg's registry of globals
                    found.append(f"<extension code {arg}>")
        except ValueError:  # end of the pickles (raw storage bytes follow in legacy files)
            break
    return found


def _disallowed_globals(path: Path) -> List[str]:
    """Globals in the checkpoint at ``path`` other than those needed to rebuild tensors."""
    if zipfile.is_zipfile(path):
        found: List[str] = []
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".pkl"):
                    with archive.open(name) as stream:
                        found += _globals_in_pickles(stream, 1)
    else:
        with open(path, "rb") as stream:
            found = _globals_in_pickles(stream, _LEGACY_PICKLES)
    return sorted({
        g for g in found
        if g not in _ALLOWED_GLOBALS and not (g.startswith("torch ") and g.endswith("Storage"))
    })


def read_checkpoint(path: PathLike, trust_pickle: bool = False) -> Any:
    """``torch.load`` on CPU that, unless ``trust_pickle``, unpickles only tensors, numbers, strings
    and containers (on torch 1.13 too); raises ``RuntimeError`` naming the other globals found."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (or is not a file)")
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    # A checkpoint from the internet must not be able to run code: only tensors, numbers,
    # strings and containers may be unpickled. The official files hold nothing else.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch < 2.0's weights-only unpickler also rejects plain floats (pickle opcode BINFLOAT),
        # which checkpoints hold as 'best_top1' or optimizer learning rates. Check the pickles'
        # opcodes ourselves: if they reference no global beyond tensor rebuilding, the full
        # unpickler cannot be made to call anything else.
        disallowed = _disallowed_globals(path)
        if disallowed:
            raise RuntimeError(
                f"checkpoint {path} contains objects other than tensors/numbers/strings "
                f"({', '.join(disallowed[:10])}); if you trust its source, call "
                "load_official(..., trust_pickle=True)"
            ) from error
        return torch.load(path, map_location="cpu", weights_only=False)


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
    checkpoint = read_checkpoint(path, trust_pickle)
    extras: Dict[str, Any] = {}
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]
        extras = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "optimizer")}
    elif isinstance(checkpoint, Mapping) and all(torch.is_tensor(v) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        found = _listing(sorted(map(str, checkpoint))) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointMismatchError(
            f"{path} is neither a state_dict nor a dict with a 'state_dict' entry "
            f"(top-level keys: {found})"
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
