"""connpack: train, pack and export networks with fixed random weights and learned connectivity.

Python API (the CLI calls the same functions; they import torch and the rest on first call, so
``import connpack`` stays fast)::

    connpack.pack(model_or_path, "model.cpk", arch=None, values="float32", codec="auto") -> bytes written
    connpack.load("model.cpk") -> torch.nn.Module
    connpack.export_onnx("model.cpk", "model.onnx", kind="dense") -> bytes written
    connpack.report("model.cpk") -> connpack.reporting.Report

Where things live: trainers/ (train), packing.py + formats/ (pack/unpack), exporters/ (ONNX),
reporting.py, bench.py, compare.py (measure), cli/ (one module per command).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["pack", "load", "export_onnx", "report"]


def pack(model_or_path, out, **kwargs) -> int:
    """Pack a network into a .cpk file; returns its size. See connpack.api.pack."""
    from connpack import api

    return api.pack(model_or_path, out, **kwargs)


def load(path):
    """A .cpk or model.pt network as a plain torch.nn.Module in eval mode. See connpack.api.load."""
    from connpack import api

    return api.load(path)


def export_onnx(path, out, kind: str = "dense", input: str | None = None) -> int:
    """Export a .cpk / model.pt network to ONNX; returns the file size. See connpack.api.export_onnx."""
    from connpack import api

    return api.export_onnx(path, out, kind=kind, input=input)


def report(path):
    """Description length of a .cpk file: a connpack.reporting.Report. See connpack.api.report."""
    from connpack import api

    return api.report(path)
