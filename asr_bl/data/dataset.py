"""Frame-level cross-entropy data: lhotse cuts with per-frame targets -> chunks (dense) or windows.

The acoustic models map an input of ``C + 48`` frames to ``C`` outputs (no padding in time, 24 frames
of context either side), so an utterance is trained *densely*: its features are edge-replicated by
24 frames at both ends (the paper's window semantics at the utterance edges) and cut into chunks of
``C + 48`` input frames, each yielding ``C`` labelled frames. Chunks stay inside the utterance: an
utterance of ``T >= C`` frames gets the fewest chunks that cover it, ``ceil(T / C)``, the first
starting at frame 0 and the last ending at frame ``T``; the ``ceil(T / C) * C - T`` positions where
neighbouring chunks overlap carry the ignore label (-100) in one of them, so every frame is labelled
exactly once per epoch. Where the overlap falls (the chunk grid's offset) is drawn per
(epoch, cut), so over epochs frames sit in different chunk positions. Only an utterance shorter
than ``C`` gets a chunk with positions past its end (one chunk, edge-replicated, labelled -100).

``mode="window"`` yields the paper's samples instead, one ``(3, 64, 49)`` window per frame with its
centre label; for every frame the window equals the chunk's input slice and the label is the same
(tested). The models have no padding in time, so in eval mode (BatchNorm on running statistics)
chunk outputs equal window outputs exactly. In train mode BatchNorm's batch statistics pool over
whatever the batch holds, so the two differ as any two batchings do; chunks hold only real frames
of the utterance (plus the 24-frame edge replication), except for utterances shorter than ``C``.

Targets come from alignments attached to the cuts as lhotse ``TemporalArray`` custom fields
(``cut.load_custom("pdf_ali")``, int32, one per frame of :func:`asr_bl.features.num_frames`).

Sampling is lhotse's: :func:`make_sampler` gives a ``DynamicBucketingSampler`` (or
``SimpleCutSampler``) that splits the cuts over DDP ranks (``world_size``/``rank``, read from
``torch.distributed`` when initialised); the dataset maps each sampled ``CutSet`` to one batch.
Use ``DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=N)``, and call both
``sampler.set_epoch(e)`` and ``dataset.set_epoch(e)`` each epoch (keep ``persistent_workers=False``
so workers see the new epoch).
"""
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

from asr_bl.features.fbank import FbankConfig
from asr_bl.features.pipeline import CmvnStats, FeatureLoader, cut_num_frames
from asr_bl.io import atomic_path
from asr_bl.models.speech_resnet import CONTEXT_FRAMES as CONTEXT  # frames each side: the 49-frame receptive field

logger = logging.getLogger(__name__)

IGNORE_LABEL = -100


@dataclass
class FrameDataConfig:
    """How cuts become training examples.

    ``mode``: "chunk" (dense, ``chunk_frames`` labels per ``chunk_frames + 2 * context`` inputs) or
    "window" (one ``2 * context + 1`` window per labelled frame). ``target``: the custom field with
    the per-frame labels. ``random_offset``: shift the chunk grid per (epoch, cut). ``spec_augment``:
    apply SpecAugment-style frequency/time masks (training only; masks never touch labels).
    """

    mode: str = "chunk"
    chunk_frames: int = 100
    context: int = CONTEXT
    target: str = "pdf_ali"
    random_offset: bool = True
    seed: int = 0
    spec_augment: bool = False
    num_freq_masks: int = 2
    max_freq_width: int = 8
    num_time_masks: int = 2
    max_time_width: int = 10

    def __post_init__(self) -> None:
        if self.mode not in ("chunk", "window"):
            raise ValueError(f"mode must be 'chunk' or 'window', got {self.mode!r}")
        if self.chunk_frames < 1 or self.context < 0:
            raise ValueError("chunk_frames must be >= 1 and context >= 0")


def chunk_offset(cut_id: str, epoch: int, seed: int, chunk_frames: int) -> int:
    """A deterministic pseudo-random offset in ``[0, chunk_frames)`` per (seed, epoch, cut).

    Hash-based, so it is the same in every DataLoader worker and on every DDP rank.
    """
    digest = hashlib.sha1(f"{seed}:{epoch}:{cut_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % chunk_frames


def chunk_utterance(
    feats: np.ndarray, labels: np.ndarray, chunk_frames: int, context: int = CONTEXT, offset: int = 0
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut one utterance into dense chunks that stay inside it (the one chunking of the project).

    ``feats``: ``(3, F, T)``; ``labels``: ``(T,)``; ``offset`` in ``[0, chunk_frames)`` shifts the
    chunk grid. With ``C = chunk_frames`` and ``T >= C`` there are ``K = ceil(T / C)`` chunks; their
    ``slack = K * C - T`` positions of overlap are split by the grid shift ``o = offset % (slack + 1)``
    (the shifts that keep ``K`` chunks inside ``[0, T)``): grid cell ``k`` is frames
    ``k * C - o .. (k + 1) * C - o - 1`` (clipped to the utterance), chunk ``k`` starts at that cell's
    start clamped to ``[0, T - C]`` and labels only its cell's frames, so its positions that the
    neighbouring chunk labels (the first chunk's last ``o``, the last chunk's first ``slack - o``)
    carry ``IGNORE_LABEL``. ``T < C`` gives one chunk at frame 0 whose positions past the end carry
    ``IGNORE_LABEL``.

    Returns ``inputs (K, 3, F, C + 2 * context)``, ``targets (K, C)`` and ``starts (K,)`` (the frame
    at position 0 of each chunk: position ``i`` of chunk ``k`` is frame ``starts[k] + i``). Input
    frames outside the utterance (the context margins at its edges, and a short utterance's tail)
    are edge-replicated, so the input window of every labelled frame is exactly the one the window
    mode gives.
    """
    num_t = feats.shape[-1]
    if labels.shape[0] != num_t:
        raise ValueError(f"{labels.shape[0]} labels for {num_t} frames; features and labels must be on one frame grid")
    if not 0 <= offset < chunk_frames:
        raise ValueError(f"offset must be in [0, {chunk_frames}), got {offset}")
    num_chunks = max(1, -(-num_t // chunk_frames))
    slack = num_chunks * chunk_frames - num_t
    shift = offset % (slack + 1) if num_t >= chunk_frames else 0
    cell_starts = np.arange(num_chunks) * chunk_frames - shift  # (K,) the grid: one cell per chunk
    starts = np.clip(cell_starts, 0, max(0, num_t - chunk_frames))
    positions = starts[:, None] + np.arange(chunk_frames)[None, :]  # (K, C) frame at each position
    in_cell = (positions >= cell_starts[:, None]) & (positions < cell_starts[:, None] + chunk_frames)
    valid = in_cell & (positions < num_t)
    targets = np.where(valid, labels[np.clip(positions, 0, num_t - 1)], IGNORE_LABEL).astype(np.int64)
    frames = starts[:, None] + np.arange(-context, chunk_frames + context)[None, :]
    frames = np.clip(frames, 0, num_t - 1)  # edge replication of the features
    inputs = np.ascontiguousarray(feats[:, :, frames].transpose(2, 0, 1, 3))  # (K, 3, F, C + 2ctx)
    return inputs, targets, starts


def window_examples(feats: np.ndarray, labels: np.ndarray, context: int) -> Tuple[np.ndarray, np.ndarray]:
    """The paper's samples: ``(T, 3, F, 2 * context + 1)`` windows (edge-replicated) and ``(T,)`` centre labels."""
    num_t = feats.shape[-1]
    if labels.shape[0] != num_t:
        raise ValueError(f"{labels.shape[0]} labels for {num_t} frames")
    frames = np.clip(np.arange(num_t)[:, None] + np.arange(-context, context + 1)[None, :], 0, num_t - 1)
    windows = np.ascontiguousarray(feats[:, :, frames].transpose(2, 0, 1, 3))
    return windows, labels.astype(np.int64)


def spec_augment(
    inputs: torch.Tensor, config: FrameDataConfig, generator: torch.Generator
) -> torch.Tensor:
    """SpecAugment-style masks on a ``(N, 3, F, T)`` batch: zero random mel bands and frame spans.

    The features are mean-normalised, so zero is the side's mean. Labels are unchanged.
    """
    out = inputs.clone()
    n, _, num_f, num_t = out.shape
    for i in range(n):
        for _ in range(config.num_freq_masks):
            width = int(torch.randint(0, config.max_freq_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, num_f - width + 1), (1,), generator=generator))
            out[i, :, start : start + width, :] = 0.0
        for _ in range(config.num_time_masks):
            width = int(torch.randint(0, config.max_time_width + 1, (1,), generator=generator))
            start = int(torch.randint(0, max(1, num_t - width + 1), (1,), generator=generator))
            out[i, :, :, start : start + width] = 0.0
    return out


class FrameLevelDataset(torch.utils.data.Dataset):
    """Maps a sampled ``CutSet`` to one batch of chunks (or windows) with frame labels.

    Returns ``{"inputs": (N, 3, F, L) float32, "targets": (N, C) int64 (chunk) or (N,) (window),
    "cut_ids": list of N, "starts": (N,) int64}`` where ``L = C + 2 * context`` (chunk) or
    ``2 * context + 1`` (window). ``starts`` is the frame of a
    chunk's first target (its target ``i`` is frame ``start + i``) or the window's frame.
    """

    def __init__(
        self,
        config: Optional[FrameDataConfig] = None,
        feature_config: Optional[FbankConfig] = None,
        cmvn_stats: Optional[CmvnStats] = None,
        source: str = "precomputed",
        wave_transforms: Optional[Sequence[Callable]] = None,
        feature_loader: Optional[FeatureLoader] = None,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else FrameDataConfig()
        self.feature_config = feature_config if feature_config is not None else FbankConfig()
        self.loader = feature_loader or FeatureLoader(
            self.feature_config, cmvn_stats=cmvn_stats, source=source, wave_transforms=wave_transforms
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the chunk offsets (and augmentation randomness) of ``epoch``."""
        self.epoch = epoch

    def load_targets(self, cut) -> np.ndarray:
        """The per-frame labels of ``cut`` (its ``config.target`` custom field), checked against the frame grid."""
        if not cut.has_custom(self.config.target):
            raise KeyError(
                f"cut {cut.id} has no '{self.config.target}' alignment; attach frame alignments first "
                "(asr_bl.data.attach_alignment)"
            )
        labels = np.asarray(cut.load_custom(self.config.target))
        expected = cut_num_frames(cut, self.feature_config)
        if labels.shape != (expected,):
            raise AssertionError(
                f"cut {cut.id}: alignment '{self.config.target}' has shape {labels.shape}, "
                f"frame grid says ({expected},)"
            )
        return labels

    def __getitem__(self, cuts: CutSet) -> Dict[str, object]:
        cuts = cuts if isinstance(cuts, CutSet) else CutSet.from_cuts(cuts)
        feats_list = self.loader(cuts)
        cfg = self.config
        inputs, targets, starts, ids = [], [], [], []
        for cut, feats in zip(cuts, feats_list):
            labels = self.load_targets(cut)
            if cfg.mode == "chunk":
                offset = (
                    chunk_offset(cut.id, self.epoch, cfg.seed, cfg.chunk_frames) if cfg.random_offset else 0
                )
                x, y, s = chunk_utterance(feats, labels, cfg.chunk_frames, cfg.context, offset)
            else:
                x, y = window_examples(feats, labels, cfg.context)
                s = np.arange(labels.shape[0])
            inputs.append(x)
            targets.append(y)
            starts.append(s)
            ids += [cut.id] * x.shape[0]
        batch_inputs = torch.from_numpy(np.concatenate(inputs)) if inputs else torch.empty(0)
        if cfg.spec_augment and batch_inputs.numel():
            generator = torch.Generator().manual_seed(
                chunk_offset(",".join(c.id for c in cuts), self.epoch, cfg.seed, 2**31 - 1)
            )
            batch_inputs = spec_augment(batch_inputs, cfg, generator)
        return {
            "inputs": batch_inputs,
            "targets": torch.from_numpy(np.concatenate(targets)) if targets else torch.empty(0, dtype=torch.int64),
            "starts": torch.from_numpy(np.concatenate(starts).astype(np.int64)) if starts else torch.empty(0),
            "cut_ids": ids,
        }


class _OptionalDataSourceSampler(torch.utils.data.Sampler):
    """torch < 2.2's ``Sampler.__init__`` requires ``data_source``; lhotse's samplers pass none.

    Mixed in after a lhotse sampler class, it sits between lhotse's ``CutSampler`` and torch's
    ``Sampler`` in the MRO and accepts the argument-less call (torch ignores the argument anyway).
    """

    def __init__(self, data_source=None) -> None:  # noqa: D107
        pass


class BucketingCutSampler(DynamicBucketingSampler, _OptionalDataSourceSampler):
    """lhotse's ``DynamicBucketingSampler``, constructible on torch 1.13 too (module-level: picklable)."""


class PlainCutSampler(SimpleCutSampler, _OptionalDataSourceSampler):
    """lhotse's ``SimpleCutSampler``, constructible on torch 1.13 too (module-level: picklable)."""


def make_sampler(
    cuts: CutSet,
    max_duration: float = 200.0,
    shuffle: bool = True,
    world_size: Optional[int] = None,
    rank: Optional[int] = None,
    seed: int = 0,
    num_buckets: Optional[int] = 10,
    drop_last: bool = False,
):
    """A DDP-aware lhotse sampler yielding ``CutSet`` batches of at most ``max_duration`` seconds.

    ``num_buckets``: bucket cuts of similar duration together (``DynamicBucketingSampler``) or
    ``None`` for a plain ``SimpleCutSampler``. ``world_size``/``rank`` default to
    ``torch.distributed``'s when it is initialised, else a single process; each rank gets a
    disjoint share of the batches.
    """
    if num_buckets:
        return BucketingCutSampler(
            cuts, max_duration=max_duration, shuffle=shuffle, num_buckets=num_buckets,
            world_size=world_size, rank=rank, seed=seed, drop_last=drop_last,
        )
    return PlainCutSampler(
        cuts, max_duration=max_duration, shuffle=shuffle, world_size=world_size, rank=rank,
        seed=seed, drop_last=drop_last,
    )


def attach_alignment(
    cuts: Iterable,
    alignments: Mapping[str, Mapping[str, np.ndarray]],
    storage_path: Union[str, Path],
    frame_shift: float = 0.01,
) -> CutSet:
    """Store per-frame labels of ``cuts`` in one HDF5 file and attach them as lhotse ``TemporalArray`` custom fields.

    ``alignments`` maps a custom field name (e.g. ``"pdf_ali"``) to ``{cut id: labels}`` (one label
    per frame, stored as exact int32: values int32 cannot hold are an error); every cut must have
    an entry in every field. Returns the cuts with the fields attached: ``cut.load_custom(name)``
    gives the labels back. Each array starts at its cut's start, so lhotse's slicing by
    (start, duration) returns exactly the cut's frames.

    All arrays go into the single file ``storage_path`` (lhotse's ``numpy_hdf5`` storage, dataset
    ``<name>/<cut id>``; ``.h5`` is appended when missing, as lhotse's writer does) rather than one
    file per array, which on a large corpus means a million tiny files. The file is written under a
    temporary name and renamed, so it is never half-written; it is *replaced as a whole*, so cuts
    of an earlier call that used the same path lose their arrays. Readers open the file lazily and
    keep the handle in lhotse's per-process cache (``lhotse.features.io.lookup_cache_or_open``),
    which also works in DataLoader worker processes; the cache is cleared here after the rename so
    that this process never reads a replaced file through a stale handle.
    """
    from lhotse import NumpyHdf5Writer, close_cached_file_handles
    from lhotse.utils import fastcopy

    final = Path(storage_path)
    if final.suffix != ".h5":
        final = final.with_suffix(final.suffix + ".h5")
    out = []
    with atomic_path(final) as tmp:  # the temporary name keeps the .h5 suffix
        with NumpyHdf5Writer(tmp, mode="w") as writer:
            for cut in cuts:
                custom = dict(cut.custom or {})
                for name, per_cut in alignments.items():
                    if cut.id not in per_cut:
                        raise KeyError(f"cut {cut.id} has no '{name}' labels to attach")
                    labels = np.asarray(per_cut[cut.id])
                    labels32 = labels.astype(np.int32)
                    if labels.ndim != 1 or not np.array_equal(labels32, labels):
                        raise ValueError(
                            f"cut {cut.id}: '{name}' must be one integer per frame that int32 holds exactly, "
                            f"got {labels.dtype} of shape {labels.shape}"
                        )
                    array = writer.store_array(
                        f"{name}/{cut.id}", labels32, frame_shift=frame_shift, temporal_dim=0, start=cut.start
                    )
                    # The manifest must name the file readers will open, not the temporary one.
                    custom[name] = fastcopy(array, array=fastcopy(array.array, storage_path=str(final)))
                out.append(fastcopy(cut, custom=custom))
    close_cached_file_handles()
    return CutSet.from_cuts(out)


__all__ = [
    "BucketingCutSampler",
    "CONTEXT",
    "FrameDataConfig",
    "FrameLevelDataset",
    "IGNORE_LABEL",
    "PlainCutSampler",
    "attach_alignment",
    "chunk_offset",
    "chunk_utterance",
    "make_sampler",
    "spec_augment",
    "window_examples",
]
