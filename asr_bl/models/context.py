"""Frame context for the 49-frame acoustic models: padding, dense and windowed inference.

The models never pad in time, so an utterance of ``T`` labelled frames is padded with
``CONTEXT_FRAMES`` (24) frames on each side by repeating its edge frames, and a chunk of ``C + 48``
input frames yields exactly the ``C`` outputs of its central frames. These helpers keep that
bookkeeping for decoding (dense inference in bounded-memory chunks) and tests/benchmarks (the
per-window reference evaluation). Training chunks with their labels are
:func:`asr_bl.data.chunk_utterance` (the one chunking, which :class:`asr_bl.data.FrameLevelDataset`
uses; the same edge replication).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from asr_bl.models.speech_resnet import CONTEXT_FRAMES, WINDOW_FRAMES


def pad_context(feats: torch.Tensor, context: int = CONTEXT_FRAMES) -> torch.Tensor:
    """Pad the last (time) axis of ``feats`` with ``context`` copies of the edge frames on each side."""
    if feats.shape[-1] < 1:
        raise ValueError("cannot pad an empty utterance")
    squeeze = feats.dim() == 3
    x = feats.unsqueeze(0) if squeeze else feats
    if x.dim() != 4:
        raise ValueError(f"expected (C, F, T) or (B, C, F, T) features, got {tuple(feats.shape)}")
    # Replicate padding works on the last two dims of a 4-D tensor: pad time only.
    x = F.pad(x, (context, context, 0, 0), mode="replicate")
    return x.squeeze(0) if squeeze else x


def _require_eval(model: nn.Module, caller: str) -> None:
    # Any submodule in train mode (BatchNorm, dropout) breaks dense == chunked == windowed.
    if any(m.training for m in model.modules()):
        raise ValueError(
            f"{caller} needs a model in eval mode (BatchNorm must use its running statistics, "
            "which must not be updated here); call model.eval() first"
        )


@torch.no_grad()
def dense_forward(
    model: nn.Module, feats: torch.Tensor, chunk_frames: Optional[int] = None, context: int = CONTEXT_FRAMES
) -> torch.Tensor:
    """Per-frame outputs ``(B, T, N)`` for unpadded features ``(B, C, F, T)`` in one pass, or in
    chunks of ``chunk_frames`` outputs (each overlapping its neighbours by ``2 * context`` input
    frames) to bound memory. The same values as :func:`windowed_forward` on the padded input.

    Inference only (it runs under ``no_grad``): ``model`` must be in eval mode, since in train mode
    BatchNorm would normalise with the statistics of each pass (so chunked != one pass != windowed)
    and update its running statistics. Training feeds :func:`asr_bl.data.chunk_utterance` chunks instead."""
    _require_eval(model, "dense_forward")
    padded = pad_context(feats, context)
    if chunk_frames is None:
        return model(padded)
    num_frames = feats.shape[-1]
    outputs = []
    for start in range(0, num_frames, chunk_frames):
        stop = min(start + chunk_frames, num_frames)
        outputs.append(model(padded[..., start : stop + 2 * context]))
    return torch.cat(outputs, dim=1)


def frame_windows(x: torch.Tensor, window: int = WINDOW_FRAMES) -> torch.Tensor:
    """All ``window``-frame windows of ``x`` (B, C, F, T) as a batch ``(B * (T - window + 1), C, F, window)``,
    ordered by example, then by window start."""
    b, c, f, t = x.shape
    if t < window:
        raise ValueError(f"{t} frames is shorter than one {window}-frame window")
    windows = x.unfold(3, window, 1)  # (B, C, F, T - window + 1, window)
    return windows.permute(0, 3, 1, 2, 4).reshape(b * (t - window + 1), c, f, window)


@torch.no_grad()
def windowed_forward(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Reference evaluation: run ``model`` on every 49-frame window of ``x`` (B, C, F, T) separately
    (batched ``batch_size`` windows at a time) and return ``(B, T - 48, N)``, as the paper's
    per-frame classifier would be applied. ``model`` must be in eval mode, as for :func:`dense_forward`."""
    _require_eval(model, "windowed_forward")
    b, t = x.shape[0], x.shape[3]
    windows = frame_windows(x)
    outputs = [model(windows[i : i + batch_size]) for i in range(0, windows.shape[0], batch_size)]
    out = torch.cat(outputs, dim=0)  # (B * (T - 48), 1, N)
    return out.reshape(b, t - WINDOW_FRAMES + 1, -1)
