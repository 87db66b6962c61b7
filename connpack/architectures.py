"""State-dict names and shapes of connpack's own architectures, without torch (formats/cpk.md 7.8).

A reader validates a .cpk's tensors against its architecture before decoding anything; with this table it
does so without importing torch (seconds and hundreds of MB in a fresh process), so a bad file is refused
cheaply. ``connpack.models`` builds the same networks as torch modules; tests/test_hostile_files.py checks
that both give the same names, order and shapes. torchvision architectures are not here (``shapes`` returns
None): their shapes come from building them on torch's meta device.
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
        keys = {"none": (), "frozen": ("running_mean", "running_var"),
                "affine": ("weight", "bias", "running_mean", "running_var")}[mode]
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
                raise SpecError(f"input {net.m.in_shape} is too small for {len(blocks)} pooling stages "
                                "(architecture does not fit the data)")
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


VGG = {"vgg11": "64 M 128 M 256 256 M 512 512 M 512 512 M",
       "vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
       "vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M"}


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


TABLE = {"lenet300": _lenet300, "lenet5": _lenet5, "resnet18": _resnet18,
         **{name: _convnet(blocks) for name, blocks in
            {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256), "conv8": (64, 128, 256, 512)}.items()},
         **{name: _vgg(config) for name, config in VGG.items()}}


TORCHVISION = ("resnet18", "resnet50", "vgg11", "vgg16", "mobilenet_v2")  # = connpack.models.tv.ARCHS (tested)


def shapes(model: ModelSpec) -> Shapes | None:
    """(connectivity weight names in tensor-index order, ((state-dict key, shape), ...)) of ``model``, or None
    for a torchvision architecture (ask connpack.models). An unknown name is refused here (SpecError), so
    that it costs no torch import either."""
    build = TABLE.get(model.arch.removeprefix("connpack:"))
    if build is None:
        if model.arch.removeprefix("torchvision:") in TORCHVISION and model.arch.startswith("torchvision:"):
            return None
        known = sorted(TABLE) + [f"torchvision:{a}" for a in TORCHVISION]
        raise SpecError(f"unknown architecture '{model.arch}' (choose from {', '.join(known)})")
    net = _Net(model)
    build(net)
    return tuple(net.conn), tuple(net.sd)
