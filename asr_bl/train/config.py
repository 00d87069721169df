"""The one documented hyperparameter object of acoustic-model training (``asr_bl-train``'s defaults).

Defaults are the paper's schedule (Appendix B): SGD with Nesterov momentum 0.9, learning rate 0.03
for a global batch of 512 labelled frames, halved every epoch from epoch 10 on, 16 epochs, weight
decay 1e-6, gradient-norm clipping at 10. Training is dense: chunks of ``chunk_frames`` labelled
frames (+ 24 frames of context on each side) instead of one 49-frame window per frame.

Batch and learning rate: ``batch_frames`` is the *global* number of labelled frames per optimiser
step (summed over processes and accumulation micro-batches). It is realised by the lhotse sampler's
``max_duration`` per micro-batch, ``batch_frames * frame_shift / (world_size * accum_steps)``
seconds of cuts, which for dense chunks is that many labelled frames up to the sampler's packing.
When ``batch_frames`` differs from the paper's ``reference_batch_frames`` (512; a GPU wants
thousands), the learning rate follows ``lr_scaling``: ``"linear"`` (default; Goyal et al. 2017:
``lr * batch_frames / 512``), ``"sqrt"`` (``lr * sqrt(batch_frames / 512)``) or ``"none"``.

Schedule: ``lr_schedule="paper"`` is the paper's (constant, halved per epoch from
``halve_from_epoch``); ``"linear"`` decays the rate every step, linearly over the whole run to
``final_lr_fraction`` of it, for runs far shorter than the paper's 16 epochs (the recipe's CPU conf).
"""
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

__all__ = ["LR_SCALINGS", "LR_SCHEDULES", "TrainConfig"]

LR_SCALINGS = ("linear", "sqrt", "none")
LR_SCHEDULES = ("paper", "linear")


@dataclass
class TrainConfig:
    """Everything that defines a training run; ``asr_bl-train``'s options are its fields.

    Data:
        cuts: training cuts with a ``pdf_ali`` custom field (``exp/tri2_ali/<corpus>_cuts_train.jsonl.gz``).
        dev_cuts: dev cuts with ``pdf_ali`` for the per-epoch frame accuracy / cross-entropy; empty:
            hold out ``dev_holdout_recordings`` recordings of the training cuts instead.
        ali_dir: the alignment dir (``tree``, ``pdf_counts``, ``num_pdfs``).
        feature_dir: the precomputed features' dir (CMVN statistics and FbankConfig per part).
        max_train_frames / max_dev_frames: use a deterministic subset of at most that many frames
            (whole cuts, chosen by a hash of the cut id); 0 = all.
    Model: ``model`` (a preset of :data:`asr_bl.models.PRESETS`), ``width`` (channel scale).
    Schedule: see the module docstring.
    Runtime: ``num_workers`` DataLoader processes started with ``mp_context`` ("spawn" or
        "forkserver": forked workers hang in torch's OpenMP); ``amp`` / ``channels_last``: None =
        on for CUDA, off for CPU; ``num_threads``: torch intra-op threads per process (0 = torch's
        default).
    Checkpoints: every ``checkpoint_every`` steps and at each epoch end; ``avg``: the exported model
        is the mean of the last ``avg`` epoch checkpoints (1 = the last epoch's weights).
    Testing hooks: ``fault_nan_step`` makes the loss of that global step non-finite (to exercise the
        divergence stop); ``stop_after_steps`` ends the invocation after that many global steps
        (checkpoint written), e.g. under job time limits.
    """

    # data
    cuts: str = ""
    dev_cuts: str = ""
    ali_dir: str = ""
    feature_dir: str = "data/fbank"
    out_dir: str = "exp/am"
    max_train_frames: int = 0
    max_dev_frames: int = 0
    dev_holdout_recordings: int = 0
    # model
    model: str = "bl-resnet22-a4-b1"
    width: float = 1.0
    # schedule (the paper's)
    epochs: int = 16
    lr: float = 0.03
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-6
    clip_grad_norm: float = 10.0
    lr_schedule: str = "paper"
    halve_from_epoch: int = 10
    lr_decay: float = 0.5
    final_lr_fraction: float = 0.05
    batch_frames: int = 512
    reference_batch_frames: int = 512
    lr_scaling: str = "linear"
    accum_steps: int = 1
    # data pipeline
    chunk_frames: int = 100
    spec_augment: bool = False
    num_buckets: int = 10
    num_workers: int = 2
    mp_context: str = "spawn"
    seed: int = 0
    # runtime
    device: str = "auto"
    amp: Optional[bool] = None
    channels_last: Optional[bool] = None
    num_threads: int = 0
    dev_chunk_frames: int = 400
    # checkpoints and outputs
    checkpoint_every: int = 500
    keep_step_checkpoints: int = 2
    avg: int = 1
    prior_floor: float = 1e-8
    tensorboard: bool = True
    progress: bool = True
    # testing hooks
    fault_nan_step: int = 0
    stop_after_steps: int = 0

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}")
        if self.lr_scaling not in LR_SCALINGS:
            raise ValueError(f"lr_scaling must be one of {LR_SCALINGS}, got {self.lr_scaling!r}")
        if self.mp_context not in ("spawn", "forkserver"):
            raise ValueError(
                f"mp_context must be 'spawn' or 'forkserver' (forked DataLoader workers hang in torch's "
                f"OpenMP), got {self.mp_context!r}")
        for name in ("epochs", "batch_frames", "reference_batch_frames", "accum_steps", "chunk_frames",
                     "checkpoint_every", "avg", "halve_from_epoch", "dev_chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.width <= 0 or self.lr <= 0:
            raise ValueError("width and lr must be positive")
        if not 0 < self.prior_floor < 1:
            raise ValueError(f"prior_floor must be in (0, 1), got {self.prior_floor}")

    def scaled_lr(self) -> float:
        """The base learning rate for ``batch_frames`` by the ``lr_scaling`` rule."""
        ratio = self.batch_frames / self.reference_batch_frames
        if self.lr_scaling == "linear":
            return self.lr * ratio
        if self.lr_scaling == "sqrt":
            return self.lr * math.sqrt(ratio)
        return self.lr

    def lr_factor(self, epoch: int) -> float:
        """The multiplier of the base rate in ``epoch`` (0-based): 1 before epoch
        ``halve_from_epoch`` (1-based, the paper's 10), then ``lr_decay`` per epoch from it on."""
        return self.lr_decay ** max(0, epoch + 1 - self.halve_from_epoch + 1)

    def step_lr_factor(self, global_step: int, steps_per_epoch: int) -> Optional[float]:
        """The ``"linear"`` schedule's multiplier of the base rate at ``global_step`` (0-based): from 1
        down to ``final_lr_fraction`` at the last of ``epochs * steps_per_epoch`` steps; None for the
        paper's per-epoch schedule (:meth:`lr_factor`). Short runs (a CPU budget of one or two epochs)
        end annealed instead of at the full rate."""
        if self.lr_schedule != "linear":
            return None
        progress = min(1.0, global_step / max(1, self.epochs * steps_per_epoch))
        return 1.0 - (1.0 - self.final_lr_fraction) * progress

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    #: Fields that do not change the trained weights (a resume may change them).
    RUNTIME_FIELDS = ("out_dir", "num_workers", "mp_context", "device", "num_threads", "checkpoint_every",
                      "keep_step_checkpoints", "avg", "tensorboard", "progress", "stop_after_steps",
                      "fault_nan_step", "epochs", "dev_chunk_frames", "prior_floor")
