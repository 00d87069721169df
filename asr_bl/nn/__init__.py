"""The Big-Little (bL) core shared by the speech acoustic models and the vision models.

Public API (stable; other packages build on it):

* :class:`MergeConfig` – how branches are aligned (time centre-crop, frequency/spatial
  resampling: bilinear or nearest) and merged (``"add"`` or ``"concat"`` + 1x1 conv), with an
  optional ReLU after the merge. ``MergeConfig.speech()`` and ``MergeConfig.vision()`` are the
  two usual settings.
* :class:`BigLittleModule` – two branches, children named ``big``, ``little``, ``little_e``,
  ``merge_conv``, ``fusion`` (the official bL-Net checkpoint names).
* :class:`MultiBranchModule` – K branches (``branches.<k>``, ``expansions.<k>``), for bL-PYR.
* :func:`merge_branches` – the merge as a function.
* :func:`center_crop`, :func:`resample_to` – the alignment primitives.
* :func:`channel_matching` – 1x1 conv + BN (``little_e``).
* :func:`count_macs`, :func:`count_parameters`, :class:`MacCount` – MACs by forward hooks.
"""
from asr_bl.nn.big_little import MERGE_MODES, BigLittleModule, MergeConfig, MultiBranchModule, merge_branches
from asr_bl.nn.layers import channel_matching
from asr_bl.nn.macs import MacCount, count_macs, count_parameters
from asr_bl.nn.resample import RESAMPLE_MODES, center_crop, resample_to

__all__ = [
    "MERGE_MODES",
    "RESAMPLE_MODES",
    "BigLittleModule",
    "MacCount",
    "MergeConfig",
    "MultiBranchModule",
    "center_crop",
    "channel_matching",
    "count_macs",
    "count_parameters",
    "merge_branches",
    "resample_to",
]
