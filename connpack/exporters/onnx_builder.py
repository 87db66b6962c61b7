"""A tiny ONNX graph builder: short generated names, deduplicated constants, local functions.

The self-decoding graph is judged by its size in bytes, so every generated name is one to three letters or
digits (never "input", "logits" or a layer's dotted name), nodes carry no name, and equal constants are
stored once.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

DOMAIN = "cp"  # domain of the graph's local functions (connpack); short: every call node repeats it
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def short_name(i: int) -> str:
    """0 -> 'a', 61 -> '9', 62 -> 'ab', ...: names of at most three characters for i < 62**3."""
    out = _ALPHABET[i % 52]  # a letter first: never a number
    i //= 52
    while i:
        out += _ALPHABET[i % 62]
        i //= 62
    return out


class Builder:
    """Appends nodes and initializers to the given lists (those of onnx_ops.to_onnx)."""

    def __init__(self, nodes: list, inits: list):
        self.nodes, self.inits = nodes, inits
        self.functions: dict[str, onnx.FunctionProto] = {}
        self._consts: dict[tuple, str] = {}
        self._n = 0

    def fresh(self) -> str:
        self._n += 1
        return short_name(self._n - 1)

    def const(self, value, dtype=None) -> str:
        """An initializer holding ``value`` (stored once per dtype, shape and bytes)."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.fresh()
            self.inits.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def init(self, name: str, arr: np.ndarray) -> str:
        """A named initializer (the data of one tensor)."""
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, out: str | None = None, domain: str = "", **attrs):
        """Append one node; returns its output name (or a tuple of names when outputs > 1)."""
        names = [out] if out is not None else [self.fresh() for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, domain=domain or None, **attrs))
        return names[0] if outputs == 1 else tuple(names)

    def function(self, name: str, inputs: list[str], outputs: list[str], nodes: list) -> str:
        """Register a local function (domain ``connpack``) once; returns its name."""
        if name not in self.functions:
            opsets = [helper.make_opsetid("", 18)]
            if any(node.domain == DOMAIN for node in nodes):
                opsets.append(helper.make_opsetid(DOMAIN, 1))
            self.functions[name] = helper.make_function(DOMAIN, name, inputs, outputs, nodes, opsets)
        return name

    def call(self, name: str, *inputs: str, outputs: int = 1):
        return self.op(name, *inputs, outputs=outputs, domain=DOMAIN)

    def finish(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """Attach the local functions (and their domain) to the model built from these lists."""
        if self.functions:
            model.functions.extend(self.functions.values())
            model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
        return model


def fn_const(out: str, value, dtype) -> onnx.NodeProto:
    """A Constant node for a function body (function bodies cannot see graph initializers)."""
    return helper.make_node("Constant", [], [out], value=numpy_helper.from_array(np.asarray(value, dtype=dtype)))


def minify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop node names and give every value short names, except graph inputs/outputs and dotted layer tensors."""
    g = model.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep or "." in name:
            return name
        if name not in names:
            while True:
                cand = short_name(len(names) + len(skipped))
                if cand in keep:
                    skipped.add(cand)
                    continue
                break
            names[name] = cand
        return names[name]

    skipped: set[str] = set()
    for init in g.initializer:
        init.name = short(init.name)
    for node in g.node:
        node.name = ""
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]
    return model
