"""Accuracy of an exported network, run by onnxruntime on a dataset split."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from connpack import data
from connpack.errors import InputFileError, SpecError
from connpack.files import regular_file


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    examples: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.examples)


def load_onnx(path: str | Path, *, max_weights: int | None = None) -> onnx.ModelProto:
    """An .onnx file, or a .cpk exported to dense ONNX in memory (``max_weights``: packing.unpack's budget)."""
    path = Path(path)
    regular_file(path)
    if path.suffix == ".cpk":
        from connpack.exporters import onnx_dense
        from connpack.packing import unpack

        return onnx_dense.to_onnx(unpack(path, **({"max_weights": max_weights} if max_weights else {})))
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise InputFileError(f"{path}: not a valid ONNX model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return proto


def default_dataset(proto: onnx.ModelProto) -> str:
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
    return {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}.get(tuple(dims), "mnist")


def session(proto: onnx.ModelProto, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def evaluate(proto: onnx.ModelProto, dataset: str | None = None, data_dir: Path | None = None,
             limit: int | None = None, batch: int = 1000) -> EvalResult:
    dataset = dataset or default_dataset(proto)
    x, y = data.load(dataset, "test", data_dir, limit=limit)
    want = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
    if want and tuple(want) != tuple(x.shape[1:]):
        raise SpecError(f"model input {tuple(want)} does not fit dataset '{dataset}' images {tuple(x.shape[1:])}")
    sess = session(proto)
    name = sess.get_inputs()[0].name
    xs, ys = x.numpy(), y.numpy()
    correct = 0
    for i in range(0, len(xs), batch):
        out = sess.run(None, {name: xs[i:i + batch]})[0]
        correct += int((np.argmax(out, axis=1) == ys[i:i + batch]).sum())
    return EvalResult(dataset, len(xs), correct)
