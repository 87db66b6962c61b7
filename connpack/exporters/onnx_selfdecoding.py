"""Self-decoding ONNX: a standard graph that rebuilds its weights from the Description's seed and bits.

Every Linear/Conv2d weight is read from the Description (what the spec says the tensor is), never from
materialised values:

    mask      W = Where(mask, G, 0)          G regenerated in the graph (onnx_rng: Philox4x32-10 + the init
    flip      W = Where(flip, -G, G)         transform of rng.py, bit-identical), bits coded (onnx_bitcode);
                                             signed constant: W = Where(positive Xor flip, +M, -M)
    ternary   W = Where(mask, Where(sign[rank], c+, c-), 0)   rank = exclusive CumSum of the mask (ASNI)
    values / dense (trained values)          refused: SpecError naming the tensor

Biases and batch-norm statistics are stored as they are. Every decoding node reads constants only, so
onnxruntime folds them into initializers when the session is created (a one-time cost, ``connpack bench``
reports it) and then runs at dense speed. The file is near the size of the .cpk; it saves disk, not memory
(folding holds the float64 intermediates of Box-Muller for a moment). Names are minified (onnx_builder).
"""

from __future__ import annotations


import numpy as np
import onnx
from onnx import TensorProto

from connpack.description import USES_GENERATED, Description
from connpack.errors import SpecError
from connpack.exporters import onnx_file
from connpack.exporters import onnx_bitcode, onnx_rng
from connpack.exporters.onnx_builder import Builder, minify
from connpack.exporters.onnx_ops import to_onnx as ops_to_onnx
from connpack.exporters.ops import Op, ops_from_module


def check(desc: Description, names: list[str]) -> None:
    """SpecError naming the first weight the graph cannot rebuild (trained values)."""
    for name in names:
        code = desc.tensors.get(name)
        if code is None or code.kind not in (*USES_GENERATED, "ternary"):
            kind = "dense" if code is None else code.kind
            raise SpecError(
                f"--kind self-decoding rebuilds mask, flip and ternary weights only, but '{name}' holds "
                f"trained values ({kind}); export it dense or sparse"
            )


class _Weights:
    """The weight callback of onnx_ops.to_onnx: the first call emits the generator and the bit decoder."""

    def __init__(self, desc: Description, names: list[str]):
        self.desc, self.names = desc, names
        self.b: Builder | None = None

    def _start(self, nodes: list, inits: list) -> None:
        self.b = Builder(nodes, inits)
        desc = self.desc
        items = [
            (name, desc.spec.init_for(name), index, code.shape)
            for index, (name, code) in enumerate(desc.tensors.items())
            if code.kind in USES_GENERATED
        ]
        self.generated = onnx_rng.generate(self.b, desc.spec.rng.seed, items)
        self.codes = {}
        for name in self.names:
            code = desc.tensors[name]
            self.codes[name] = onnx_bitcode.encode(code.bits, onnx_bitcode.view_of(code.shape))
            if code.kind == "ternary":
                self.codes[f"{name}:signs"] = onnx_bitcode.encode(code.signs)
        self.decode = onnx_bitcode.Decoder(self.b, list(self.codes.values()))

    def __call__(self, op: Op, nodes: list, inits: list) -> str:
        if self.b is None:
            self._start(nodes, inits)
        b, name = self.b, f"{op.name}.weight"
        code = self.desc.tensors[name]
        bits = self.decode(self.codes[name])
        g = self.generated.get(name)
        if isinstance(g, onnx_rng.Signs) and code.kind == "flip":  # the flip bit toggles the generated sign
            flat = b.op("Where", b.op("Xor", g.positive, bits), g.plus, g.minus)
        elif code.kind == "mask":
            g = g.value(b) if isinstance(g, onnx_rng.Signs) else g
            flat = b.op("Where", bits, g, b.const(np.float32(0)))
        elif code.kind == "flip":
            flat = b.op("Where", bits, b.op("Neg", g), g)
        else:  # ternary: the sign of a kept weight is at its rank among the kept weights
            kept = int(code.bits.sum())
            c_neg, c_pos = (np.float32(c) for c in code.centroids)
            if kept:
                signs = self.decode(self.codes[f"{name}:signs"])
                rank = b.op("CumSum", b.op("Cast", bits, to=TensorProto.INT64), b.const(0, np.int64), exclusive=1)
                rank = b.op("Min", rank, b.const(kept - 1, np.int64))
                signed = b.op("Where", b.op("Gather", signs, rank), b.const(c_pos), b.const(c_neg))
            else:
                signed = b.const(c_neg)
            flat = b.op("Where", bits, signed, b.const(np.float32(0)))
        return b.op("Reshape", flat, b.const(list(code.shape), np.int64), out=name)


def to_onnx(desc: Description) -> onnx.ModelProto:
    """The self-decoding graph of a sequential network; checked with full_check."""
    from connpack.exporters.module import to_module

    ops = ops_from_module(to_module(desc))
    names = [f"{op.name}.weight" for op in ops if op.kind in ("linear", "conv")]
    check(desc, names)
    weights = _Weights(desc, names)
    proto = ops_to_onnx(ops, desc.spec.model.in_shape, weight=weights, doc="connpack self-decoding")
    if weights.b is not None:
        weights.b.finish(proto)
    minify(proto)
    onnx_file.check(proto, full_check=True)
    return proto
