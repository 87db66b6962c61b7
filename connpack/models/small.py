"""The papers' small networks: LeNet-300-100 and the VGG-like Conv2/4/6/8.

LeNet-300-100: 784-300-100-10, ReLU, no biases (Ivan & Florian).
ConvN (Ivan & Florian Table A.2, edge-popup Table 1): blocks of two 3x3 convs (64, 128, 256, 512 filters)
each followed by 2x2 max pooling, then fully connected 256-256-classes. ``width`` multiplies every hidden
width (edge-popup's width multiplier).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from connpack.errors import SpecError
from connpack.layers import ConnConv2d, ConnLinear
from connpack.models.registry import register
from connpack.specs import ModelSpec


def _w(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


def _bn2d(spec: ModelSpec, channels: int) -> list[nn.Module]:
    if spec.batchnorm == "none":
        return []
    return [nn.BatchNorm2d(channels, affine=spec.batchnorm == "affine")]


def _bn1d(spec: ModelSpec, features: int) -> list[nn.Module]:
    if spec.batchnorm == "none":
        return []
    return [nn.BatchNorm1d(features, affine=spec.batchnorm == "affine")]


def named(layers: list[nn.Module]) -> nn.Sequential:
    """A Sequential whose children are named conv1, bn1, relu1, pool1, fc1, ... (readable tensor names)."""
    prefix = {
        ConnConv2d: "conv",
        ConnLinear: "fc",
        nn.BatchNorm1d: "bn",
        nn.BatchNorm2d: "bn",
        nn.ReLU: "relu",
        nn.MaxPool2d: "pool",
        nn.AvgPool2d: "pool",
        nn.Flatten: "flatten",
    }
    counts: dict[str, int] = {}
    names = []
    for layer in layers:
        p = prefix.get(type(layer), "layer")
        counts[p] = counts.get(p, 0) + 1
        names.append(p if p == "flatten" else f"{p}{counts[p]}")
    return nn.Sequential(OrderedDict(zip(names, layers)))


def classifier(spec: ModelSpec, n_in: int, hidden: tuple[int, ...]) -> list[nn.Module]:
    """Fully connected layers n_in -> hidden... -> classes, ReLU (and batch norm per spec) between them."""
    layers: list[nn.Module] = []
    for n in hidden:
        n = _w(n, spec.width)
        layers += [ConnLinear(n_in, n, bias=spec.bias), *_bn1d(spec, n), nn.ReLU()]
        n_in = n
    return layers + [ConnLinear(n_in, spec.num_classes, bias=spec.bias)]


def mlp(spec: ModelSpec, hidden: tuple[int, ...]) -> nn.Sequential:
    c, h, w = spec.in_shape
    return named([nn.Flatten(), *classifier(spec, c * h * w, hidden)])


@register("lenet300")
def lenet300(spec: ModelSpec) -> nn.Module:
    return mlp(spec, (300, 100))


def convnet(spec: ModelSpec, blocks: tuple[int, ...], fc: tuple[int, ...] = (256, 256)) -> nn.Sequential:
    c, h, w = spec.in_shape
    layers: list[nn.Module] = []
    for n in blocks:
        n = _w(n, spec.width)
        for _ in range(2):
            layers += [ConnConv2d(c, n, 3, padding=1, bias=spec.bias), *_bn2d(spec, n), nn.ReLU()]
            c = n
        if h < 2 or w < 2:
            raise SpecError(
                f"input {spec.in_shape} is too small for {len(blocks)} pooling stages (architecture does not fit the data)"
            )
        layers.append(nn.MaxPool2d(2))
        h, w = h // 2, w // 2
    layers.append(nn.Flatten())
    return named(layers + classifier(spec, c * h * w, fc))


for _name, _blocks in {
    "conv2": (64,),
    "conv4": (64, 128),
    "conv6": (64, 128, 256),
    "conv8": (64, 128, 256, 512),
}.items():
    register(_name)(lambda spec, _b=_blocks: convnet(spec, _b))


@register("lenet5")
def lenet5(spec: ModelSpec) -> nn.Module:
    """The convolutional LeNet of the reinitialization paper (Paganini & Forde; ~60k weights on MNIST):
    conv 3x3 6, pool, conv 3x3 16, pool (no padding), fc 120-84-classes. ``width`` scales every layer."""
    c, h, w = spec.in_shape
    layers: list[nn.Module] = []
    for n in (6, 16):
        n = _w(n, spec.width)
        if h < 4 or w < 4:
            raise SpecError(f"input {spec.in_shape} is too small for lenet5 (architecture does not fit the data)")
        layers += [ConnConv2d(c, n, 3, padding=0, bias=spec.bias), *_bn2d(spec, n), nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = n, (h - 2) // 2, (w - 2) // 2
    layers.append(nn.Flatten())
    return named(layers + classifier(spec, c * h * w, (120, 84)))
