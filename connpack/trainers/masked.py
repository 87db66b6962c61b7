"""Dense training under a fixed-for-now keep-mask (ASNI, iterative magnitude pruning).

Each connectivity layer is put in ``dense`` mode (its weight is trained) and gets a parametrization
``weight = original * mask`` (torch.nn.utils.parametrize), so the forward pass and the gradient both see
the mask: a pruned weight is zero and receives no gradient (Damadi et al., Algorithm 1, line 3). The mask
is a buffer, so it is part of the state dict and of every checkpoint. ``describe`` writes the result as a
Description with kind "values" (mask + kept values) for each masked tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from connpack.description import Description, TensorCode
from connpack.layers import conn_layers
from connpack.specs import NetworkSpec


class MaskParam(nn.Module):
    """weight = original * mask."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w):
        return w * self.mask


def attach(model: nn.Module) -> nn.Module:
    """Dense mode + an all-ones mask on every connectivity layer."""
    for _, layer in conn_layers(model):
        layer.configure("dense", layer.weight.detach())
        parametrize.register_parametrization(layer, "weight", MaskParam(torch.ones_like(layer.weight)), unsafe=True)
    return model


def _mask_module(layer) -> MaskParam:
    return layer.parametrizations.weight[0]


def layers(model: nn.Module) -> dict[str, nn.Module]:
    return {f"{name}.weight": layer for name, layer in conn_layers(model)}


@torch.no_grad()
def weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The effective (masked) weights as float32 numpy arrays."""
    return {k: layer.weight.detach().float().cpu().numpy() for k, layer in layers(model).items()}


@torch.no_grad()
def masks(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: _mask_module(layer).mask.detach().cpu().numpy() > 0 for k, layer in layers(model).items()}


@torch.no_grad()
def set_masks(model: nn.Module, new: dict[str, np.ndarray]) -> None:
    """Install new masks and zero the pruned originals (Algorithm 1, line 9: theta <- theta * m)."""
    for k, layer in layers(model).items():
        m = _mask_module(layer).mask
        m.copy_(torch.from_numpy(np.asarray(new[k])).to(m.device, m.dtype))
        layer.parametrizations.weight.original.mul_(m)


@torch.no_grad()
def set_weights(model: nn.Module, values: dict[str, np.ndarray]) -> None:
    """Overwrite the originals (masked positions are zeroed by the next set_masks / the forward pass)."""
    for k, layer in layers(model).items():
        orig = layer.parametrizations.weight.original
        orig.copy_(torch.from_numpy(np.asarray(values[k], dtype=np.float32)).to(orig.device) * _mask_module(layer).mask)


def sparsity(model: nn.Module) -> float:
    """Fraction of prunable weights that are pruned (biases and batch norm are not counted)."""
    ms = masks(model)
    total = sum(m.size for m in ms.values())
    return 1.0 - sum(int(m.sum()) for m in ms.values()) / max(1, total)


def stats(model: nn.Module) -> dict:
    return {"sparsity": sparsity(model)}


@torch.no_grad()
def dense_state(model: nn.Module) -> dict[str, np.ndarray]:
    """Every tensor other than the connectivity weights: biases, batch-norm parameters and statistics."""
    skip = ("parametrizations.", "num_batches_tracked")
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items() if not any(s in k for s in skip)}


def describe(model: nn.Module, spec: NetworkSpec) -> Description:
    """The masked network as kind "values" tensors (mask bits + the kept values in C order)."""
    ws, ms = weights(model), masks(model)
    tensors = {k: TensorCode("values", ws[k].shape, bits=ms[k], values=ws[k][ms[k]].astype(np.float32)) for k in ws}
    return Description(spec, tensors, dense_state(model))
