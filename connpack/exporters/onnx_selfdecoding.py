"""Self-decoding ONNX: the graph stores packed bits and rebuilds its weights with standard operators.

For networks whose every Linear/Conv2d weight takes at most two values per layer (signed-constant flipping:
W = c * (1 - 2 s), the generated sign XOR the flip bit is folded into one sign bit s per weight at export
time; Ivan & Florian section 3) or two non-zero values and zero (pruning / edge-popup over signed-constant
weights: {-c, 0, +c}; ASNI's centroid network: {c-, 0, c+}). The weight is rebuilt in the graph:

    binary    bits = unpack(packed)                      W = Where(bits, lo, hi)            1 bit / weight
    ternary   m = unpack(mask), s = unpack(signs)        W = Where(m, Where(s[i], hi, lo), 0),
              i = min(CumSum(m, exclusive), k - 1)                                   1 + k/n bits / weight

unpack(bytes)[8j + t] = (bytes[j] >> (7 - t)) & 1 (np.packbits order: BitShift, BitwiseAnd, Reshape,
Slice). Ternary uses mask bits + the sign bits of the kept weights only (n + k bits for n weights, k kept):
never more than 2 bits per weight and fewer whenever anything is pruned; the sign of weight i is found at
its rank among the kept weights, an exclusive CumSum of the mask, then Gather.

onnxruntime folds the decoding into constants when the session is created (a one-time cost); after that
the graph runs at dense speed. It saves disk (the file is about the size of the .cpk), not memory or time.
Any other weight (trained values, kaiming init) -> SpecError naming the first such tensor.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from connpack import atomic
from connpack.description import Description
from connpack.errors import SpecError
from connpack.exporters.compact import Op, ops_from_module, to_onnx as ops_to_onnx


def _init(inits: list, name: str, arr) -> str:
    inits.append(numpy_helper.from_array(np.asarray(arr), name))
    return name


class _Decoder:
    """The weight callback of compact.to_onnx: emits the decoding nodes for one weight."""

    SHARED = {
        "sd:shifts": np.arange(7, -1, -1, dtype=np.uint8),
        "sd:one": np.array(1, np.uint8),
        "sd:axis1": np.array([1], np.int64),
        "sd:flat": np.array([-1], np.int64),
        "sd:zero": np.array([0], np.int64),
        "sd:axis0": np.array(0, np.int64),
        "sd:fzero": np.array(0, np.float32),
    }

    def __init__(self):
        self.added: set[str] = set()

    def _shared(self, inits: list, *names: str) -> None:
        for name in names:
            if name not in self.added:
                _init(inits, name, self.SHARED[name])
                self.added.add(name)

    def _unpack(self, nodes: list, inits: list, name: str, bits: np.ndarray) -> str:
        """Nodes turning packed bytes back into a [n] bool tensor."""
        n = bits.size
        self._shared(inits, "sd:shifts", "sd:one", "sd:axis1", "sd:flat", "sd:zero")
        packed = _init(inits, f"{name}:packed", np.packbits(bits.reshape(-1)))
        p = f"/{name}"
        nodes += [
            helper.make_node("Unsqueeze", [packed, "sd:axis1"], [f"{p}/col"]),
            helper.make_node("BitShift", [f"{p}/col", "sd:shifts"], [f"{p}/shifted"], direction="RIGHT"),
            helper.make_node("BitwiseAnd", [f"{p}/shifted", "sd:one"], [f"{p}/bits8"]),
            helper.make_node("Reshape", [f"{p}/bits8", "sd:flat"], [f"{p}/flat"]),
            helper.make_node("Slice", [f"{p}/flat", "sd:zero", _init(inits, f"{name}:n", np.array([n], np.int64))],
                             [f"{p}/bits"]),
        ]
        return f"{p}/bits"

    def __call__(self, op: Op, nodes: list, inits: list) -> str:
        w = op.params["weight"]
        name = f"{op.name}.weight"
        values = np.unique(w)
        nonzero = values[values != 0]
        shape = _init(inits, f"{name}:shape", np.array(w.shape, np.int64))
        if len(values) <= 2:
            lo, hi = values[0], values[-1]
            bits = self._unpack(nodes, inits, name, w == lo)
            nodes += [
                helper.make_node("Cast", [bits], [f"/{name}/cond"], to=TensorProto.BOOL),
                helper.make_node("Where", [f"/{name}/cond", _init(inits, f"{name}:lo", lo),
                                           _init(inits, f"{name}:hi", hi)], [f"/{name}/flatw"]),
            ]
        elif len(values) == 3 and len(nonzero) == 2:
            lo, hi = nonzero
            mask = w != 0
            k = int(mask.sum())
            m = self._unpack(nodes, inits, f"{name}:mask", mask)
            s = self._unpack(nodes, inits, f"{name}:sign", w[mask] == hi)
            p = f"/{name}"
            self._shared(inits, "sd:axis0", "sd:fzero")
            nodes += [
                helper.make_node("Cast", [m], [f"{p}/m64"], to=TensorProto.INT64),
                helper.make_node("CumSum", [f"{p}/m64", "sd:axis0"], [f"{p}/rank"], exclusive=1),
                helper.make_node("Min", [f"{p}/rank", _init(inits, f"{name}:last", np.array(k - 1, np.int64))],
                                 [f"{p}/idx"]),
                helper.make_node("Gather", [s, f"{p}/idx"], [f"{p}/s"], axis=0),
                helper.make_node("Cast", [f"{p}/s"], [f"{p}/sb"], to=TensorProto.BOOL),
                helper.make_node("Where", [f"{p}/sb", _init(inits, f"{name}:hi", hi), _init(inits, f"{name}:lo", lo)],
                                 [f"{p}/signed"]),
                helper.make_node("Cast", [m], [f"{p}/mb"], to=TensorProto.BOOL),
                helper.make_node("Where", [f"{p}/mb", f"{p}/signed", "sd:fzero"], [f"{p}/flatw"]),
            ]
        else:
            raise SpecError(f"--self-decoding needs +-c or ternary {{c-, 0, c+}} weights per layer, but '{name}' "
                            f"has {len(values)} distinct values (export it dense or sparse)")
        nodes.append(helper.make_node("Reshape", [f"/{name}/flatw", shape], [name]))
        return name


def to_onnx(desc: Description) -> onnx.ModelProto:
    """The self-decoding graph of a sequential network; checked with full_check."""
    from connpack.exporters.module import to_module

    ops = ops_from_module(to_module(desc))
    proto = ops_to_onnx(ops, desc.spec.model.in_shape, weight=_Decoder(),
                        doc="connpack self-decoding graph: weights rebuilt from packed bits")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(desc: Description, path: str | Path) -> int:
    return atomic.write_bytes(path, to_onnx(desc).SerializeToString())
