"""CIFAR ResNet-18 (He et al. 2016, the 3x3-stem CIFAR variant) built from ConnConv2d/ConnLinear.

Stem 3x3 conv (64) -> four stages of two BasicBlocks (64, 128, 256, 512 channels; stride 2 from the second
stage on) -> global average pooling -> linear. Convolutions have no bias; every conv is followed by batch
norm as ``ModelSpec.batchnorm`` says: ``frozen`` (no affine parameters, edge-popup section 4.1: "batch norm
parameters are frozen at their default initialization"), ``affine`` or ``none``. ``width`` multiplies every
channel count (edge-popup's width multiplier). Registered as "resnet18".
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from connpack.layers import ConnConv2d, ConnLinear
from connpack.models.registry import register
from connpack.specs import ModelSpec


def _bn(spec: ModelSpec, channels: int) -> nn.Module:
    if spec.batchnorm == "none":
        return nn.Identity()
    return nn.BatchNorm2d(channels, affine=spec.batchnorm == "affine")


class BasicBlock(nn.Module):
    def __init__(self, spec: ModelSpec, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = ConnConv2d(c_in, c_out, 3, stride=stride, padding=1, bias=spec.bias)
        self.bn1 = _bn(spec, c_out)
        self.conv2 = ConnConv2d(c_out, c_out, 3, stride=1, padding=1, bias=spec.bias)
        self.bn2 = _bn(spec, c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                ConnConv2d(c_in, c_out, 1, stride=stride, padding=0, bias=spec.bias), _bn(spec, c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, spec: ModelSpec, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        width = [max(1, int(round(c * spec.width))) for c in (64, 128, 256, 512)]
        self.conv1 = ConnConv2d(spec.in_shape[0], width[0], 3, stride=1, padding=1, bias=spec.bias)
        self.bn1 = _bn(spec, width[0])
        stages, c_in = [], width[0]
        for i, (c_out, n) in enumerate(zip(width, blocks)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(spec, c_in, c_out, stride=2 if i > 0 and j == 0 else 1))
                c_in = c_out
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = ConnLinear(c_in, spec.num_classes, bias=spec.bias)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(self.pool(out).flatten(1))


@register("resnet18")
def resnet18(spec: ModelSpec) -> nn.Module:
    return ResNet(spec, (2, 2, 2, 2))
