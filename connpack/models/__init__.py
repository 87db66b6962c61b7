"""Architectures by name, and ``build``: a NetworkSpec -> an nn.Module with its weights generated.

Weight tensor i (the i-th ConnLinear/ConnConv2d in registration order) is drawn from the RNG stream
(seed, i) with the InitSpec recorded for its name; the same spec therefore always gives the same weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from connpack import rng
from connpack.layers import conn_layers
from connpack.models import small  # noqa: F401  (registers lenet300, conv2/4/6/8)
from connpack.models import resnet  # noqa: F401  (registers resnet18)
from connpack.models import tv  # noqa: F401  (registers torchvision:*; imports torchvision only when building)
from connpack.models import vgg  # noqa: F401  (registers vgg11/13/16: batch norm, average pooling)
from connpack.models.registry import get, names, register
from connpack.specs import NetworkSpec

__all__ = ["build", "get", "names", "register", "weight_names", "generate_weights"]


def weight_names(model: nn.Module) -> list[str]:
    return [f"{name}.weight" for name, _ in conn_layers(model)]


def generate_weights(spec: NetworkSpec, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The fixed weights as float32 numpy arrays, in the order of ``shapes`` (tensor index = position)."""
    return {
        name: rng.generate(spec.init_for(name), spec.rng.seed, index, shape)
        for index, (name, shape) in enumerate(shapes.items())
    }


def weight_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": tuple(m.weight.shape) for name, m in conn_layers(model)}


def build(spec: NetworkSpec, *, generate: bool = True) -> nn.Module:
    """The architecture of ``spec.model`` with its connectivity-bearing weights drawn from the RNG."""
    model = get(spec.model.arch)(spec.model)
    if generate:
        weights = generate_weights(spec, weight_shapes(model))
        with torch.no_grad():
            for (_, layer), w in zip(conn_layers(model), weights.values()):
                layer.weight.copy_(torch.from_numpy(w))
                if layer.bias is not None:
                    layer.bias.zero_()
    return model
