"""ONNX graphs of any size on disk: checked and written, with external data above protobuf's 2 GiB limit.

A protobuf message cannot be serialised past 2 GiB, so a network with more than ~500M float32 weights cannot
be one .onnx file. ``write`` then puts every large initializer in one file beside the graph, ``<out>.data``
(the ONNX external-data convention: ``location`` relative to the graph, ``offset``/``length`` in bytes,
offsets aligned to 4096 so runtimes may map it), and the graph itself in ``out``; onnxruntime loads the pair
from the graph's path (``InferenceSession(str(out))``). Both files are written atomically, as one group.
``check`` runs onnx's checker on a graph of any size: past the limit it checks the graph with its large
tensors' bytes set aside (their shapes, what the checker reads, stay).
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import onnx
from onnx import TensorProto

EXTERNAL_AT = 2**31 - 2**27  # bytes of tensor data from which a graph is written with external data (~1.87 GiB)
MIN_EXTERNAL = 1024  # smaller tensors stay in the graph
ALIGN = 4096


def tensor_bytes(proto: onnx.ModelProto) -> int:
    """Bytes of raw tensor data in the graph's initializers (what decides whether it fits one file)."""
    return sum(len(t.raw_data) for t in proto.graph.initializer)


def _large(proto: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in proto.graph.initializer if len(t.raw_data) >= MIN_EXTERNAL]


def _refer(t: TensorProto, location: str, offset: int, length: int) -> None:
    del t.external_data[:]
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    t.ClearField("raw_data")


@contextmanager
def _set_aside(proto: onnx.ModelProto) -> Iterator[None]:
    """The large tensors' bytes out of the graph for the block (references to an external file), then back."""
    tensors = _large(proto)
    saved = [t.raw_data for t in tensors]
    offset = 0
    for t, data in zip(tensors, saved):
        _refer(t, "set-aside.data", offset, len(data))
        offset += len(data)
    try:
        yield offset
    finally:
        for t, data in zip(tensors, saved):
            del t.external_data[:]
            t.ClearField("data_location")  # unset, as before (set to its default it would add 2 bytes)
            t.raw_data = data


def check(proto: onnx.ModelProto, full_check: bool = False) -> None:
    """onnx.checker.check_model on ``proto`` whatever its size (ValidationError / InferenceError as onnx's).
    Past the limit the graph is checked from a scratch folder, its large tensors referring to a sparse file of
    their size there (the checker reads their shapes and that their file exists, not their bytes)."""
    if tensor_bytes(proto) < EXTERNAL_AT:
        onnx.checker.check_model(proto, full_check=full_check)
        return
    with _set_aside(proto) as size, tempfile.TemporaryDirectory(prefix="connpack-check-") as tmp:
        with open(Path(tmp) / "set-aside.data", "wb") as f:
            f.truncate(size)
        (Path(tmp) / "graph.onnx").write_bytes(proto.SerializeToString())
        onnx.checker.check_model(str(Path(tmp) / "graph.onnx"), full_check=full_check)


def data_path(out: Path) -> Path:
    """Where ``write`` puts the external data of the graph written to ``out``."""
    return out.with_name(out.name + ".data")


def write(proto: onnx.ModelProto, out: str | Path, group) -> int:
    """Write ``proto`` to ``out`` through ``group`` (connpack.atomic.group: renamed into place with the
    command's other outputs); with external data in ``data_path(out)`` when its tensors reach
    EXTERNAL_AT bytes (the graph is changed in place then: its large tensors refer to that file).
    Returns the bytes written (both files)."""
    out = Path(out)
    if tensor_bytes(proto) < EXTERNAL_AT:
        data = proto.SerializeToString()
        group.path(out).write_bytes(data)
        return len(data)
    where = data_path(out)
    size = 0
    with open(group.path(where), "wb") as f:
        for t in _large(proto):
            offset = -(-size // ALIGN) * ALIGN
            f.write(b"\0" * (offset - size))
            f.write(t.raw_data)
            size = offset + len(t.raw_data)
            _refer(t, where.name, offset, len(t.raw_data))
    graph = proto.SerializeToString()
    group.path(out).write_bytes(graph)
    return size + len(graph)
