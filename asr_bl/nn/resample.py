"""Cropping and resampling of feature maps, the two ways branches of a bL-module are made to agree.

Tensors are ``(batch, channels, *spatial)``; for speech the spatial dims are ``(freq, time)``, for
images ``(height, width)``. Dims are given as tensor dim indices (``2`` = first spatial dim).
"""
from typing import Sequence

import torch
import torch.nn.functional as F

RESAMPLE_MODES = ("bilinear", "nearest")


def center_crop(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Crop ``x`` along ``dim`` to ``size``, removing equally many elements from both ends.

    This is how sequences processed without padding are aligned: a branch with fewer "valid"
    convolutions is longer by an even number of frames and its centre matches the shorter one. An
    odd excess cannot be centred and is refused, because it would silently shift the time axis.
    """
    length = x.shape[dim]
    if size > length:
        raise ValueError(f"cannot centre-crop dim {dim} of length {length} to a larger size {size}")
    excess = length - size
    if excess == 0:
        return x
    if excess % 2:
        raise ValueError(
            f"centre crop of dim {dim} from {length} to {size} removes an odd number of elements; "
            "the branches' receptive fields would not be centred on the same position"
        )
    return x.narrow(dim, excess // 2, size)


def resample_to(
    x: torch.Tensor,
    size: Sequence[int],
    dims: Sequence[int],
    mode: str = "bilinear",
    align_corners: bool = False,
) -> torch.Tensor:
    """Resample ``x`` so that ``x.shape[dims[i]] == size[i]``, leaving every other dim untouched.

    Only the listed spatial dims are interpolated: for speech ``dims=(2,)`` up-samples frequency
    and keeps time exact (an interpolation to the same length with ``align_corners=False`` is the
    identity, so no frame is mixed with its neighbours). ``mode`` is ``"bilinear"`` (linear along
    each resampled dim) or ``"nearest"`` (as in the official bL-Net ImageNet code).
    """
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"unknown resampling mode {mode!r}; expected one of {RESAMPLE_MODES}")
    if len(size) != len(dims):
        raise ValueError(f"size {tuple(size)} and dims {tuple(dims)} differ in length")
    if x.dim() != 4:
        raise ValueError(f"expected a 4-D (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    target = list(x.shape[2:])
    for d, s in zip(dims, size):
        if d not in (2, 3):
            raise ValueError(f"only spatial dims 2 and 3 can be resampled, got {d}")
        target[d - 2] = int(s)
    if target == list(x.shape[2:]):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=tuple(target), mode="nearest")
    return F.interpolate(x, size=tuple(target), mode="bilinear", align_corners=align_corners)
