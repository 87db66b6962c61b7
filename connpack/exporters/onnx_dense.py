"""Dense ONNX export: the materialised module through torch.onnx (TorchScript exporter), opset 18,
dynamic batch dimension, checked with onnx.checker (full_check=True)."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch

from connpack import atomic
from connpack.description import Description
from connpack.exporters.module import to_module

OPSET = 18


def to_onnx(desc: Description) -> onnx.ModelProto:
    model = to_module(desc)
    dummy = torch.zeros(1, *desc.spec.model.in_shape)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), buf, dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "connpack"
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(desc: Description, path: str | Path) -> int:
    data = to_onnx(desc).SerializeToString()
    return atomic.write_bytes(path, data)
