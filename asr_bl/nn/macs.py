"""Counting multiply-accumulates (MACs) and parameters of a model by running it.

Forward hooks on every ``nn.Conv1d/2d/3d`` and ``nn.Linear`` record the MACs of the call that
actually happened (so strides, groups, unpadded time axes and branch resolutions are all taken
from the real forward pass, not re-derived). Convention, as in the paper's GMAC figures and
common counters (fvcore, ptflops "conv+fc"): a convolution costs
``out_elements * in_channels / groups * prod(kernel)`` and a linear layer
``out_elements * in_features``; biases, BatchNorm, activations, pooling and interpolation are not
counted. MACs are per example (divided by the batch size).
"""
from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch import nn

COUNTED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class MacCount:
    """Result of :func:`count_macs`: totals and the MACs per counted module (by qualified name)."""

    macs: int
    params: int
    per_module: Dict[str, int] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def params_m(self) -> float:
        return self.params / 1e6


def _module_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one call, for the whole batch: a layer may see the batch reshaped (e.g. a Linear
    over (B * T, C) frames), so only the model's input tells the number of examples."""
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    kernel = 1
    for k in module.kernel_size:
        kernel *= k
    return output.numel() * (module.in_channels // module.groups) * kernel


def count_parameters(model: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor) -> MacCount:
    """MACs of ``model(example)`` per example (``example.shape[0]`` examples), and the model's
    parameter count.

    The model is run once in eval mode (its training flag is restored afterwards); a module called
    several times is counted every time it runs.
    """
    per_module: Dict[str, int] = {}
    handles: List[torch.utils.hooks.RemovableHandle] = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            per_module[name] = per_module.get(name, 0) + _module_macs(module, output)

        return hook

    for name, module in model.named_modules():
        if isinstance(module, COUNTED_TYPES):
            handles.append(module.register_forward_hook(make_hook(name)))
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    batch = max(1, int(example.shape[0]))
    per_example = {name: macs // batch for name, macs in per_module.items()}
    return MacCount(macs=sum(per_example.values()), params=count_parameters(model), per_module=per_example)
