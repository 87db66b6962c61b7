"""State-dict names and shapes of connpack's own architectures, without torch (formats/cpk.md 7.8).

A reader validates a .cpk's tensors against its architecture before decoding anything; with this table it
does so without importing torch (seconds and hundreds of MB in a fresh process), so a bad file is refused
cheaply. ``connpack.models`` builds the same networks as torch modules; tests/test_hostile_files.py checks
that both give the same names, order and shapes. The torchvision architectures (cpk.md 7.8) are here too,
written from torchvision's model code (``TV_TABLE``; tests/test_hostile_files.py compares them with the
modules built on torch's meta device), so that report and a refused file need no torch either.
"""

from __future__ import annotations

from connpack.errors import SpecError
from connpack.specs import ModelSpec

Shapes = tuple[tuple[str, ...], tuple[tuple[str, tuple[int, ...]], ...]]


class _Net:
    """Collects (connectivity weight names, state-dict entries) in registration order."""

    def __init__(self, m: ModelSpec):
        self.m, self.conn, self.sd = m, [], []
        self.count = {"conv": 0, "fc": 0, "bn": 0}

    def w(self, n: int) -> int:
        return max(1, int(round(n * self.m.width)))

    def next(self, kind: str) -> str:
        self.count[kind] += 1
        return f"{kind}{self.count[kind]}"

    def conv(self, p: str, i: int, o: int, k: int = 3) -> None:
        self.conn.append(p + ".weight")
        self.sd.append((p + ".weight", (o, i, k, k)))
        if self.m.bias:
            self.sd.append((p + ".bias", (o,)))

    def linear(self, p: str, i: int, o: int) -> None:
        self.conn.append(p + ".weight")
        self.sd.append((p + ".weight", (o, i)))
        if self.m.bias:
            self.sd.append((p + ".bias", (o,)))

    def norm(self, p: str, n: int, mode: str) -> None:
        keys = {
            "none": (),
            "frozen": ("running_mean", "running_var"),
            "affine": ("weight", "bias", "running_mean", "running_var"),
        }[mode]
        self.sd += [(f"{p}.{k}", (n,)) for k in keys]

    def classifier(self, n_in: int, hidden: tuple[int, ...]) -> None:
        for h in hidden:
            self.linear(self.next("fc"), n_in, self.w(h))
            if self.m.batchnorm != "none":
                self.norm(self.next("bn"), self.w(h), self.m.batchnorm)
            n_in = self.w(h)
        self.linear(self.next("fc"), n_in, self.m.num_classes)


def _lenet300(net: _Net) -> None:
    c, h, w = net.m.in_shape
    net.classifier(c * h * w, (300, 100))


def _convnet(blocks: tuple[int, ...]):
    def build(net: _Net) -> None:
        c, h, w = net.m.in_shape
        for n in blocks:
            for _ in range(2):
                net.conv(net.next("conv"), c, net.w(n))
                if net.m.batchnorm != "none":
                    net.norm(net.next("bn"), net.w(n), net.m.batchnorm)
                c = net.w(n)
            if h < 2 or w < 2:
                raise SpecError(
                    f"input {net.m.in_shape} is too small for {len(blocks)} pooling stages "
                    "(architecture does not fit the data)"
                )
            h, w = h // 2, w // 2
        net.classifier(c * h * w, (256, 256))

    return build


def _lenet5(net: _Net) -> None:
    c, h, w = net.m.in_shape
    for n in (6, 16):
        if h < 4 or w < 4:
            raise SpecError(f"input {net.m.in_shape} is too small for lenet5 (architecture does not fit the data)")
        net.conv(net.next("conv"), c, net.w(n))
        if net.m.batchnorm != "none":
            net.norm(net.next("bn"), net.w(n), net.m.batchnorm)
        c, h, w = net.w(n), (h - 2) // 2, (w - 2) // 2
    net.classifier(c * h * w, (120, 84))


VGG = {
    "vgg11": "64 M 128 M 256 256 M 512 512 M 512 512 M",
    "vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
    "vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M",
}


def _vgg(config: str):
    def build(net: _Net) -> None:
        c, h, w = net.m.in_shape
        pos = 0
        for item in config.split():
            if item == "M":
                if h < 2 or w < 2:
                    raise SpecError(f"input {net.m.in_shape} is too small for VGG's five pooling stages")
                h, w, pos = h // 2, w // 2, pos + 1
                continue
            n = net.w(int(item))
            net.conv(str(pos), c, n)
            net.norm(str(pos + 1), n, "frozen" if net.m.batchnorm == "frozen" else "affine")
            c, pos = n, pos + 3
        net.linear(str(pos + 2), c, net.m.num_classes)  # after average pooling and flatten

    return build


def _resnet18(net: _Net) -> None:
    bn = net.m.batchnorm
    net.conv("conv1", net.m.in_shape[0], net.w(64))
    net.norm("bn1", net.w(64), bn)
    c_in = net.w(64)
    for stage, n in enumerate((64, 128, 256, 512), start=1):
        c_out = net.w(n)
        for b in range(2):
            stride, p = (2 if stage > 1 and b == 0 else 1), f"layer{stage}.{b}"
            net.conv(p + ".conv1", c_in, c_out)
            net.norm(p + ".bn1", c_out, bn)
            net.conv(p + ".conv2", c_out, c_out)
            net.norm(p + ".bn2", c_out, bn)
            if stride != 1 or c_in != c_out:
                net.conv(p + ".shortcut.0", c_in, c_out, 1)
                net.norm(p + ".shortcut.1", c_out, bn)
            c_in = c_out
    net.linear("fc", c_in, net.m.num_classes)


TABLE = {
    "lenet300": _lenet300,
    "lenet5": _lenet5,
    "resnet18": _resnet18,
    **{
        name: _convnet(blocks)
        for name, blocks in {
            "conv2": (64,),
            "conv4": (64, 128),
            "conv6": (64, 128, 256),
            "conv8": (64, 128, 256, 512),
        }.items()
    },
    **{name: _vgg(config) for name, config in VGG.items()},
}


TORCHVISION = ("resnet18", "resnet50", "vgg11", "vgg16", "mobilenet_v2")  # = connpack.models.tv.ARCHS (tested)


class _TV(_Net):
    """torchvision's layers: biases and batch norms as torchvision fixes them (``bias``/``batchnorm`` unused)."""

    def tconv(self, p: str, i: int, o: int, k: int, bias: bool = False, groups: int = 1) -> None:
        self.conn.append(p + ".weight")
        self.sd.append((p + ".weight", (o, i // groups, k, k)))
        if bias:
            self.sd.append((p + ".bias", (o,)))

    def tlinear(self, p: str, i: int, o: int) -> None:
        self.conn.append(p + ".weight")
        self.sd += [(p + ".weight", (o, i)), (p + ".bias", (o,))]

    def bn(self, p: str, n: int) -> None:
        self.norm(p, n, "affine")


def _tv_resnet(layers: tuple[int, ...], bottleneck: bool):
    """torchvision.models.resnet: BasicBlock (resnet18) or Bottleneck (expansion 4, resnet50)."""

    def build(net: _TV) -> None:
        net.tconv("conv1", net.m.in_shape[0], 64, 7)
        net.bn("bn1", 64)
        c_in = 64
        for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            c_out = planes * 4 if bottleneck else planes
            for b in range(blocks):
                p = f"layer{stage}.{b}"
                if bottleneck:
                    net.tconv(p + ".conv1", c_in, planes, 1)
                    net.bn(p + ".bn1", planes)
                    net.tconv(p + ".conv2", planes, planes, 3)
                    net.bn(p + ".bn2", planes)
                    net.tconv(p + ".conv3", planes, c_out, 1)
                    net.bn(p + ".bn3", c_out)
                else:
                    net.tconv(p + ".conv1", c_in, planes, 3)
                    net.bn(p + ".bn1", planes)
                    net.tconv(p + ".conv2", planes, planes, 3)
                    net.bn(p + ".bn2", planes)
                if b == 0 and (stage > 1 or c_in != c_out):  # stride 2 in stages 2-4, or wider
                    net.tconv(p + ".downsample.0", c_in, c_out, 1)
                    net.bn(p + ".downsample.1", c_out)
                c_in = c_out
        net.tlinear("fc", c_in, net.m.num_classes)

    return build


def _tv_vgg(config: str):
    """torchvision.models.vgg without batch norm: features (Conv+ReLU, MaxPool), then a 3-layer classifier
    after 7x7 adaptive average pooling."""

    def build(net: _TV) -> None:
        c, pos = net.m.in_shape[0], 0
        for item in config.split():
            if item != "M":
                net.tconv(f"features.{pos}", c, int(item), 3, bias=True)
                c, pos = int(item), pos + 1
            pos += 1
        net.tlinear("classifier.0", c * 7 * 7, 4096)
        net.tlinear("classifier.3", 4096, 4096)
        net.tlinear("classifier.6", 4096, net.m.num_classes)

    return build


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision.models._utils._make_divisible with min_value = divisor."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _tv_mobilenet_v2(net: _TV) -> None:
    """torchvision.models.mobilenetv2.MobileNetV2(width_mult=width): Conv2dNormActivation = conv (no bias) + BN."""
    width = float(net.m.width)
    c = _make_divisible(32 * width)
    last = _make_divisible(1280 * max(1.0, width))
    net.tconv("features.0.0", net.m.in_shape[0], c, 3)
    net.bn("features.0.1", c)
    f = 1
    for t, n_out, repeat, _stride in (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ):
        out = _make_divisible(n_out * width)
        for _ in range(repeat):
            hidden, j, p = int(round(c * t)), 0, f"features.{f}.conv"
            if t != 1:
                net.tconv(f"{p}.0.0", c, hidden, 1)
                net.bn(f"{p}.0.1", hidden)
                j = 1
            net.tconv(f"{p}.{j}.0", hidden, hidden, 3, groups=hidden)  # depthwise
            net.bn(f"{p}.{j}.1", hidden)
            net.tconv(f"{p}.{j + 1}", hidden, out, 1)
            net.bn(f"{p}.{j + 2}", out)
            c, f = out, f + 1
    net.tconv(f"features.{f}.0", c, last, 1)
    net.bn(f"features.{f}.1", last)
    net.tlinear("classifier.1", last, net.m.num_classes)


TV_TABLE = {
    "resnet18": _tv_resnet((2, 2, 2, 2), False),
    "resnet50": _tv_resnet((3, 4, 6, 3), True),
    "vgg11": _tv_vgg("64 M 128 M 256 256 M 512 512 M 512 512 M"),
    "vgg16": _tv_vgg("64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M"),
    "mobilenet_v2": _tv_mobilenet_v2,
}


def shapes(model: ModelSpec) -> Shapes:
    """(connectivity weight names in tensor-index order, ((state-dict key, shape), ...)) of ``model``. An
    unknown name is refused here (SpecError), so that it costs no torch import either; so is a width other
    than 1 for a torchvision ResNet or VGG (as connpack.models.tv refuses it)."""
    build = TABLE.get(model.arch.removeprefix("connpack:"))
    if build is not None:
        net = _Net(model)
        build(net)
        return tuple(net.conn), tuple(net.sd)
    tv = model.arch.removeprefix("torchvision:")
    if tv in TORCHVISION and model.arch.startswith("torchvision:"):
        if tv != "mobilenet_v2" and model.width != 1.0:
            raise SpecError(f"architecture '{model.arch}' has no width multiplier (got width {model.width})")
        net = _TV(model)
        TV_TABLE[tv](net)
        return tuple(net.conn), tuple(net.sd)
    known = sorted(TABLE) + [f"torchvision:{a}" for a in TORCHVISION]
    raise SpecError(f"unknown architecture '{model.arch}' (choose from {', '.join(known)})")
