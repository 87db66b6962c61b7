"""Exporters: a Description -> a plain torch module / state_dict (``module``), or an ONNX graph.

ONNX kinds (``to_onnx(desc, kind, input)``; ``connpack unpack --kind``, ``connpack.export_onnx(kind=...)``),
all with the same input end (onnx_input: raw input normalised in the graph, the data contract in
metadata_props):

    dense          the materialised network (onnx_dense, through torch.onnx)            any network
    compact        dead units/channels removed, identical outputs (compact)           sequential networks
    sparse-init    weights as COO sparse constants where smaller (onnx_sparse)        any sequential network
    sparse         compact + COO sparse constants (onnx_sparse)                        sequential networks
    self-decoding  weights regenerated + coded bits decoded in the graph (onnx_selfdecoding)  mask/flip/ternary
"""
from __future__ import annotations

import importlib

from connpack.errors import SpecError

KINDS = {
    "dense": ("onnx_dense", lambda m, desc: m.to_onnx(desc)),
    "compact": ("compact", lambda m, desc: m.compact_onnx(desc)[0]),
    "sparse-init": ("onnx_sparse", lambda m, desc: m.to_onnx(desc, compact=False)),
    "sparse": ("onnx_sparse", lambda m, desc: m.to_onnx(desc, compact=True)),
    "self-decoding": ("onnx_selfdecoding", lambda m, desc: m.to_onnx(desc)),
}


def to_onnx(desc, kind: str = "dense", input: str | None = None):
    """The ONNX graph (onnx.ModelProto) of ``desc`` of the given kind.

    input: "raw" (the graph normalises its input itself, as the data contract records; the default when
    ``desc`` has one) or "normalised" (the input as the network saw it in training; the default otherwise).
    Every kind gets the same input handling and metadata_props (onnx_input.finish).
    """
    if kind not in KINDS:
        raise SpecError(f"unknown ONNX export kind '{kind}' (choose from {', '.join(KINDS)})")
    from connpack.exporters import onnx_input

    onnx_input.choose(desc.data, input)  # refuse a bad choice before the (possibly long) export
    module_name, make = KINDS[kind]
    return onnx_input.finish(make(importlib.import_module(f"connpack.exporters.{module_name}"), desc), desc, input)
