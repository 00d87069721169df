"""The self-contained acoustic-model directory that decoding loads, and its log-likelihoods.

Layout (written by :func:`write_model_dir`, the last step of ``asr_bl-train``)::

    model.pt          {"state_dict": {name: tensor}} only (no pickled objects); the exported weights
                      (the last epoch's, or the mean of the last ``--avg`` epochs')
    card.json         the :class:`ModelCard`: preset, width, num_pdfs, tree fingerprint, feature
                      config, MACs and params (counted as ``asr_bl-flops`` does), training summary
    log_priors.npy    float32 (num_pdfs,): log of the alignment's pdf occupation frequencies,
                      each count floored at ``prior_floor`` x the total (zero-count pdfs stay finite)
    tree              a byte copy of the alignment dir's tree (its sha1 is ``card.tree_fingerprint``)

:func:`load_model_dir` reads it with nothing else (no pickle that can run code: weights through
``weights_only`` / the opcode-checked loader) and returns an :class:`AcousticModel` whose
:meth:`AcousticModel.log_likelihoods` turns one utterance's features into the ``(T, num_pdfs)``
matrix every decoder reads.
"""
import json
import logging
import shutil
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch
from torch import nn

from asr_bl.io import Pathlike, atomic_path, save_numpy, save_torch, write_json

__all__ = [
    "AcousticModel",
    "ModelCard",
    "ModelDirError",
    "count_model",
    "load_model_dir",
    "log_priors_from_counts",
    "read_pdf_counts",
    "write_model_dir",
]

logger = logging.getLogger(__name__)

CARD_NAME = "card.json"
WEIGHTS_NAME = "model.pt"
PRIORS_NAME = "log_priors.npy"
TREE_NAME = "tree"
CARD_FORMAT = "asr_bl.train.model_dir/1"


class ModelDirError(ValueError):
    """A model directory (a trained network's, or a GMM's for decoding) is incomplete,
    inconsistent or unsafe to load; the message names the file and the fix."""


@dataclass
class ModelCard:
    """What a decoder needs to know about the acoustic model (``card.json``).

    ``tree_fingerprint``: ``asr_bl.stage.fingerprint(<ali dir>/tree)["sha1"]``, which a decoding
    graph built from another tree does not match. ``feature_config``: the
    :class:`asr_bl.features.FbankConfig` as a dict. ``macs`` / ``params``: per 49-frame window,
    from :func:`asr_bl.bin.flops.measure` (the ``asr_bl-flops`` counter). ``train``: a summary of
    the training run (config, epochs, final dev metrics).
    """

    preset: str
    width: float
    num_pdfs: int
    tree_fingerprint: str
    feature_config: Dict[str, Any]
    macs: int
    params: int
    context_frames: int = 24
    train: Dict[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ModelCard":
        names = {f.name for f in fields(cls)}
        missing = [f.name for f in fields(cls)
                   if f.name not in data and f.default is MISSING and f.default_factory is MISSING]
        unknown = sorted(set(data) - names)
        if unknown:
            logger.debug("card.json: ignoring unknown entries %s", unknown)
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as error:
            raise ModelDirError(f"card.json lacks required entries ({error}); missing: {missing}") from error


def read_pdf_counts(path: Pathlike) -> np.ndarray:
    """The int64 pdf occupation counts of a Kaldi text vector ``[ c0 c1 ... ]`` (``<ali dir>/pdf_counts``,
    written by :mod:`asr_bl.hmm.export`)."""
    path = Path(path)
    text = path.read_text().strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{path}: expected a Kaldi text vector '[ c0 c1 ... ]'")
    try:
        counts = np.array([float(x) for x in text[1:-1].split()], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: non-numeric pdf count ({error})") from error
    if counts.size == 0 or (counts < 0).any():
        raise ValueError(f"{path}: pdf counts must be a non-empty vector of non-negative numbers")
    return counts


def log_priors_from_counts(counts: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """``log(max(count, floor * total) / sum(...))`` as float32: finite for pdfs never seen."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("pdf counts sum to zero: no alignment frames")
    floored = np.maximum(counts, floor * total)
    return np.log(floored / floored.sum()).astype(np.float32)


def count_model(preset: str, width: float, num_pdfs: int) -> Dict[str, int]:
    """MACs per 49-frame window and parameters, by the ``asr_bl-flops`` counter."""
    from asr_bl.bin.flops import measure

    row = measure(preset, num_classes=num_pdfs, width=width)
    return {"macs": int(row["macs"]), "params": int(row["params"])}


def write_model_dir(
    out_dir: Pathlike,
    state_dict: Dict[str, torch.Tensor],
    card: ModelCard,
    log_priors: np.ndarray,
    tree: Pathlike,
) -> Path:
    """Write the model directory (layout in the module docstring); every file atomically, card last."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_priors = np.asarray(log_priors, dtype=np.float32)
    if log_priors.shape != (card.num_pdfs,) or not np.isfinite(log_priors).all():
        raise ValueError(f"log_priors must be {card.num_pdfs} finite values, got shape {log_priors.shape}")
    save_torch({"state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}},
               out_dir / WEIGHTS_NAME)
    save_numpy(out_dir / PRIORS_NAME, log_priors)
    if Path(tree).resolve() != (out_dir / TREE_NAME).resolve():
        with atomic_path(out_dir / TREE_NAME) as tmp:
            shutil.copyfile(tree, tmp)
    write_json(out_dir / CARD_NAME, asdict(card))
    return out_dir


class AcousticModel:
    """A loaded model directory: ``card``, the eval-mode ``model`` (on ``device``), ``log_priors``
    (float32 tensor (num_pdfs,) on CPU), and :meth:`log_likelihoods`."""

    def __init__(self, card: ModelCard, model: nn.Module, log_priors: torch.Tensor, path: Path,
                 device: torch.device) -> None:
        self.card = card
        self.model = model
        self.log_priors = log_priors
        self.path = path
        self.device = device

    @property
    def num_pdfs(self) -> int:
        return self.card.num_pdfs

    @torch.no_grad()
    def log_posteriors(self, feats: Union[torch.Tensor, np.ndarray], chunk_frames: int = 1000) -> torch.Tensor:
        """``(T, num_pdfs)`` float32 CPU log-softmax outputs for one utterance's ``(3, F, T)`` features."""
        from asr_bl.models import dense_forward

        x = torch.as_tensor(feats, dtype=torch.float32)
        expected = (3, int(self.card.feature_config.get("num_mel_bins", 64)))
        if x.dim() != 3 or tuple(x.shape[:2]) != expected or x.shape[2] < 1:
            raise ValueError(
                f"features must be (3, {expected[1]}, T) float32 (FeatureLoader's output for one cut), "
                f"got {tuple(x.shape)}")
        x = x.to(self.device).unsqueeze(0)
        # Chunked over time: each chunk of `chunk_frames` outputs reads chunk + 48 input frames, so
        # memory is bounded and the result equals the one-pass forward exactly (no padding in time).
        logits = dense_forward(self.model, x, chunk_frames=chunk_frames, context=self.card.context_frames)
        return torch.log_softmax(logits[0].float(), dim=-1).cpu()

    def log_likelihoods(self, feats: Union[torch.Tensor, np.ndarray], chunk_frames: int = 1000) -> torch.Tensor:
        """Pseudo-log-likelihoods ``(T, num_pdfs)`` float32 on CPU for one utterance.

        ``feats``: ``(3, F, T)`` float32, :class:`asr_bl.features.FeatureLoader`'s output for one
        cut (CMVN applied). Returns log-softmax minus the floored log-prior, *not* scaled by an
        acoustic scale; row ``t`` is frame ``t`` of the cut (the 24-frame context at the edges is
        edge-replicated, as in training). Memory is bounded by ``chunk_frames``; the values do not
        depend on it.
        """
        return self.log_posteriors(feats, chunk_frames) - self.log_priors[None, :]


def load_model_dir(path: Pathlike, device: Union[str, torch.device] = "cpu") -> AcousticModel:
    """Load a model directory written by :func:`write_model_dir` (or ``asr_bl-train``).

    Never unpickles arbitrary objects: ``model.pt`` must hold tensors only (a file that would run
    code is refused with ``ModelDirError``). Raises ``ModelDirError`` naming the missing or
    inconsistent file.
    """
    from asr_bl.models import build_model
    from asr_bl.vision.checkpoint import CheckpointMismatchError, load_official

    path = Path(path)
    for name in (CARD_NAME, WEIGHTS_NAME, PRIORS_NAME, TREE_NAME):
        if not (path / name).is_file():
            raise ModelDirError(f"{path / name} is missing; {path} is not a complete model dir "
                                "(written by asr_bl-train at the end of training)")
    try:
        card = ModelCard.from_dict(json.loads((path / CARD_NAME).read_text()))
    except json.JSONDecodeError as error:
        raise ModelDirError(f"{path / CARD_NAME}: not valid JSON ({error})") from error
    priors = np.load(path / PRIORS_NAME, allow_pickle=False)
    if priors.shape != (card.num_pdfs,) or not np.isfinite(priors).all():
        raise ModelDirError(f"{path / PRIORS_NAME}: expected {card.num_pdfs} finite log-priors, "
                            f"got shape {priors.shape}")
    model = build_model(card.preset, num_classes=card.num_pdfs, width=card.width)
    try:
        load_official(model, path / WEIGHTS_NAME)
    except CheckpointMismatchError as error:
        raise ModelDirError(f"{path / WEIGHTS_NAME} does not match card.json's {card.preset} width {card.width} "
                            f"with {card.num_pdfs} pdfs: {error}") from error
    except RuntimeError as error:  # the safe loader's refusal of pickled objects
        raise ModelDirError(f"{path / WEIGHTS_NAME}: refused to load: {error}") from error
    device = torch.device(device)
    model.to(device).eval()
    return AcousticModel(card, model, torch.from_numpy(priors.astype(np.float32)), path, device)
