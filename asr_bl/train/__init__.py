"""Acoustic-model training: cross-entropy on dense chunks, DDP via torchrun, checkpoints, model dirs.

Modules:

- :mod:`asr_bl.train.config`       :class:`TrainConfig`, the one hyperparameter object (paper defaults);
- :mod:`asr_bl.train.trainer`      compute_loss / validate / train_one_epoch / run(rank, world_size, config);
- :mod:`asr_bl.train.checkpoint`   atomic, safely loadable checkpoints, the newest valid one, averaging;
- :mod:`asr_bl.train.distributed`  process group, AMP and schedule helpers (shared with asr_bl.vision);
- :mod:`asr_bl.train.model_dir`    the self-contained model dir decoding loads: :func:`load_model_dir`.

Names are imported lazily, so ``asr_bl.train.distributed`` (used by the vision trainer) does not pull
in lhotse or the speech data pipeline. Nothing here imports k2 or a Kaldi binding.
"""
import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "asr_bl.train.config",
    "AcousticModel": "asr_bl.train.model_dir",
    "ModelCard": "asr_bl.train.model_dir",
    "ModelDirError": "asr_bl.train.model_dir",
    "load_model_dir": "asr_bl.train.model_dir",
    "write_model_dir": "asr_bl.train.model_dir",
    "log_priors_from_counts": "asr_bl.train.model_dir",
    "read_pdf_counts": "asr_bl.train.model_dir",
    "CheckpointError": "asr_bl.train.checkpoint",
    "load_checkpoint": "asr_bl.train.checkpoint",
    "newest_valid_checkpoint": "asr_bl.train.checkpoint",
    "average_model_states": "asr_bl.train.checkpoint",
    "DistContext": "asr_bl.train.distributed",
    "init_distributed": "asr_bl.train.distributed",
    "BadInputError": "asr_bl.train.trainer",
    "ResumeMismatchError": "asr_bl.train.trainer",
    "TrainingDiverged": "asr_bl.train.trainer",
    "compute_loss": "asr_bl.train.trainer",
    "validate": "asr_bl.train.trainer",
    "train_one_epoch": "asr_bl.train.trainer",
    "run": "asr_bl.train.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'asr_bl.train' has no attribute {name!r}")
