"""Dense ONNX export: the materialised module through torch.onnx (TorchScript exporter), opset 18,
dynamic batch dimension, checked with onnx.checker (full_check=True; any size: exporters.onnx_file)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from connpack.description import Description
from connpack.exporters import onnx_file
from connpack.exporters.module import to_module

OPSET = 18


def to_onnx(desc: Description) -> onnx.ModelProto:
    """The module through torch.onnx into a scratch folder (so that torch writes a network past protobuf's 2 GiB
    as external data instead of failing), read back whole: the caller's writer decides how it is stored."""
    model = to_module(desc)
    dummy = torch.zeros(1, *desc.spec.model.in_shape)
    with tempfile.TemporaryDirectory(prefix="connpack-onnx-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
        )
        del model
        proto = onnx.load(str(path), load_external_data=True)
    for t in proto.graph.initializer:  # read back into the graph: no reference to the scratch folder is left
        if t.external_data:  # (fields cleared, not set to their defaults: a small graph's bytes stay as before)
            del t.external_data[:]
            t.ClearField("data_location")
    proto.producer_name = "connpack"
    onnx_file.check(proto, full_check=True)
    return proto
