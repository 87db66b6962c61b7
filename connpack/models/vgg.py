"""VGG-11/13/16 for CIFAR with batch norm and average pooling (Damadi et al. section 4.1, Table 1).

Blocks of 3x3 convolutions (with bias, as the paper's parameter counts: VGG-11 9,231,114) each followed by
batch norm and ReLU, 2x2 max pooling after each block, then a 1x1 average pooling and a single
fully-connected layer 512 -> classes. ``width`` multiplies every convolution's channels. Batch norm is
always present (the paper's VGG-style); it is affine unless the spec asks for ``frozen``.
"""

from __future__ import annotations

from torch import nn

from connpack.errors import SpecError
from connpack.layers import ConnConv2d, ConnLinear
from connpack.models.registry import register
from connpack.specs import ModelSpec

CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


def vgg(spec: ModelSpec, config: tuple) -> nn.Sequential:
    c, h, w = spec.in_shape
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            if h < 2 or w < 2:
                raise SpecError(f"input {spec.in_shape} is too small for VGG's five pooling stages")
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
            continue
        n = max(1, int(round(item * spec.width)))
        layers += [
            ConnConv2d(c, n, 3, padding=1, bias=spec.bias),
            nn.BatchNorm2d(n, affine=spec.batchnorm != "frozen"),
            nn.ReLU(),
        ]
        c = n
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), ConnLinear(c, spec.num_classes, bias=spec.bias)]
    return nn.Sequential(*layers)


for _name, _config in CONFIGS.items():
    register(_name)(lambda spec, _c=_config: vgg(spec, _c))
