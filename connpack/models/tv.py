"""torchvision architectures (ResNet-18/50, VGG-11/16, MobileNetV2) as connpack models.

The builder makes the torchvision model with ``weights=None`` (architecture only: nothing is downloaded),
then replaces every nn.Conv2d / nn.Linear in place by a ConnConv2d / ConnLinear with the same stride,
padding, dilation, groups, padding mode and bias, so trainers, pack, unpack and the exporters treat it like
any other connpack network. State-dict keys stay torchvision's (``conv1.weight``, ``fc.bias``, ...), so a
state_dict of the plain torchvision model loads into it unchanged.

ModelSpec knobs: ``num_classes`` sizes the classifier; ``in_shape[0]`` != 3 replaces the first convolution
(e.g. 1-channel MNIST); ``width`` is MobileNetV2's width multiplier (ResNet/VGG refuse width != 1);
``bias`` and ``batchnorm`` do not apply (torchvision fixes them).

torchvision is imported only when a model is built, so ``import connpack`` does not need it.
"""

from __future__ import annotations

import torch
from torch import nn

from connpack.errors import SpecError
from connpack.layers import ConnConv2d, ConnLinear
from connpack.models.registry import register
from connpack.specs import ModelSpec

ARCHS = ("resnet18", "resnet50", "vgg11", "vgg16", "mobilenet_v2")
PREFIX = "torchvision:"


def conn_conv2d(conv: nn.Conv2d) -> ConnConv2d:
    """A ConnConv2d with every hyper-parameter of ``conv`` and a copy of its weight and bias.

    ConnConv2d's own constructor takes only (in, out, kernel, stride, padding, bias); dilation, groups and
    the padding mode are set through nn.Conv2d's constructor, which ConnConv2d inherits.
    """
    layer = ConnConv2d.__new__(ConnConv2d)
    nn.Conv2d.__init__(
        layer,
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    layer._init_conn()
    _copy_params(conv, layer)
    return layer


def conn_linear(lin: nn.Linear) -> ConnLinear:
    layer = ConnLinear(lin.in_features, lin.out_features, bias=lin.bias is not None).to(lin.weight.device)
    _copy_params(lin, layer)
    return layer


def _copy_params(src: nn.Module, dst: nn.Module) -> None:
    if src.weight.is_meta:
        return
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if src.bias is not None:
            dst.bias.copy_(src.bias)


def convert(model: nn.Module) -> nn.Module:
    """Replace every nn.Conv2d / nn.Linear of ``model`` (in place, recursively) by its Conn* equivalent."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (ConnConv2d, ConnLinear)):
                continue
            if type(child) is nn.Conv2d:
                setattr(parent, name, conn_conv2d(child))
            elif type(child) is nn.Linear:
                setattr(parent, name, conn_linear(child))
            elif isinstance(child, (nn.Conv2d, nn.Linear)):
                raise SpecError(f"cannot convert layer '{name}' of type {type(child).__name__}")
    return model


def _first_conv(model: nn.Module, arch: str) -> tuple[nn.Module, str]:
    if arch.startswith("resnet"):
        return model, "conv1"
    if arch.startswith("vgg"):
        return model.features, "0"
    return model.features[0], "0"  # mobilenet_v2: Conv2dNormActivation


def torchvision_model(arch: str, spec: ModelSpec) -> nn.Module:
    """The plain torchvision model (nn.Conv2d / nn.Linear) for ``spec``; weights=None."""
    try:
        import torchvision
    except ImportError:
        raise SpecError(f"architecture '{PREFIX}{arch}' needs torchvision (pip install 'connpack[vision]')") from None
    kwargs = {"weights": None, "num_classes": spec.num_classes}
    if arch == "mobilenet_v2":
        kwargs["width_mult"] = float(spec.width)
    elif spec.width != 1.0:
        raise SpecError(f"architecture '{PREFIX}{arch}' has no width multiplier (got width {spec.width})")
    model = getattr(torchvision.models, arch)(**kwargs)
    channels = spec.in_shape[0]
    if channels != 3:
        parent, name = _first_conv(model, arch)
        old = getattr(parent, name)
        setattr(
            parent,
            name,
            nn.Conv2d(
                channels,
                old.out_channels,
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                dilation=old.dilation,
                groups=old.groups,
                bias=old.bias is not None,
            ),
        )
    return model


def _builder(arch: str):
    def build(spec: ModelSpec) -> nn.Module:
        return convert(torchvision_model(arch, spec))

    build.__name__ = arch
    build.__doc__ = f"torchvision.models.{arch}(weights=None) with Conn layers."
    return build


for _arch in ARCHS:
    register(PREFIX + _arch)(_builder(_arch))
