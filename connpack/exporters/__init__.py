"""Exporters: a Description -> a plain torch module / state_dict (``module``), or an ONNX graph.

ONNX kinds (``to_onnx(desc, kind)``; ``connpack unpack --kind``, ``connpack.export_onnx(kind=...)``):

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


def to_onnx(desc, kind: str = "dense"):
    """The ONNX graph (onnx.ModelProto) of ``desc`` of the given kind."""
    if kind not in KINDS:
        raise SpecError(f"unknown ONNX export kind '{kind}' (choose from {', '.join(KINDS)})")
    module_name, make = KINDS[kind]
    return make(importlib.import_module(f"connpack.exporters.{module_name}"), desc)
