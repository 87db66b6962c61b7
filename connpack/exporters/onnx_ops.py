"""The ONNX builder for op lists (connpack.exporters.ops): the compact, sparse and self-decoding exporters write
their graphs through it.

``to_onnx`` writes a list of ops as an opset-18 graph with a dynamic batch dimension; ``weight`` lets the
self-decoding exporter replace how a Linear/Conv2d weight is stored.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from connpack.exporters.ops import Op, spaces

OPSET = 18

WeightFn = Callable[[Op, list, list], str]


def _dense_weight(op: Op, nodes: list, inits: list) -> str:
    name = f"{op.name}.weight"
    inits.append(numpy_helper.from_array(op.params["weight"], name))
    return name


def to_onnx(
    ops: list[Op], in_shape: tuple[int, ...], weight: WeightFn = _dense_weight, doc: str = "", opset: int = OPSET
) -> onnx.ModelProto:
    """The chain as an ONNX graph: input [batch, *in_shape] -> logits [batch, classes]."""
    nodes: list = []
    inits: list = []
    x = "input"

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    for i, op in enumerate(ops):
        y = "logits" if i == len(ops) - 1 else f"/{op.name}/{op.kind}"
        if op.kind in ("linear", "conv"):
            ins = [x, weight(op, nodes, inits)]
            if "bias" in op.params:
                ins.append(init(f"{op.name}.bias", op.params["bias"]))
            if op.kind == "linear":
                nodes.append(helper.make_node("Gemm", ins, [y], name=f"{op.name}/Gemm", transB=1))
            else:
                p, wshape = op.attrs["padding"], op.params["weight"].shape
                nodes.append(
                    helper.make_node(
                        "Conv",
                        ins,
                        [y],
                        name=f"{op.name}/Conv",
                        kernel_shape=list(wshape[2:]),
                        strides=list(op.attrs["stride"]),
                        dilations=list(op.attrs["dilation"]),
                        pads=[p[0], p[1], p[0], p[1]],
                    )
                )
        elif op.kind == "bn":
            ins = [x] + [init(f"{op.name}.{n}", op.params[n]) for n in ("scale", "shift", "mean", "var")]
            nodes.append(
                helper.make_node("BatchNormalization", ins, [y], name=f"{op.name}/BN", epsilon=op.attrs["eps"])
            )
        elif op.kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [y], name=f"{op.name}/Relu"))
        elif op.kind == "maxpool":
            p = op.attrs["padding"]
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [x],
                    [y],
                    name=f"{op.name}/MaxPool",
                    kernel_shape=list(op.attrs["kernel"]),
                    strides=list(op.attrs["stride"]),
                    pads=[p[0], p[1], p[0], p[1]],
                )
            )
        elif op.kind == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y], name=f"{op.name}/GlobalAveragePool"))
        elif op.kind == "flatten":
            nodes.append(helper.make_node("Flatten", [x], [y], name=f"{op.name}/Flatten", axis=1))
        x = y
    n_out = spaces(ops, in_shape)[-1][0]
    graph = helper.make_graph(
        nodes,
        "connpack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="connpack", doc_string=doc
    )
    model.ir_version = 9
    return model
