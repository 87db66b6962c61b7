"""Accuracy of an exported network, run by onnxruntime on a dataset split.

The dataset is the one the network records (its data contract: the .cpk's ``data``, the graph's
metadata_props), or the one asked for (then ``EvalResult.note`` names both); never guessed. The graph is fed
what it takes: raw input when it normalises itself, else the input normalised by the recorded mean/std (a
graph with no record: by the asked dataset's own mean/std, as connpack trained it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from connpack import data
from connpack.errors import DataError, InputFileError, SpecError
from connpack.files import regular_file


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    examples: int
    correct: int
    trained_on: str | None = None  # the recorded dataset (None: not recorded)
    note: str | None = None  # "trained on X; evaluating on Y as asked" when they differ

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.examples)


def load_onnx(path: str | Path, *, max_weights: int | None = None) -> onnx.ModelProto:
    """An .onnx file, or a .cpk exported to dense ONNX in memory (``max_weights``: packing.unpack's budget)."""
    path = Path(path)
    regular_file(path)
    if path.suffix == ".cpk":
        from connpack import exporters
        from connpack.packing import load_checked

        return exporters.to_onnx(load_checked(path, **({"max_weights": max_weights} if max_weights else {})), "dense")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise InputFileError(
            f"{path}: not a valid ONNX model ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    return proto


def session(proto: onnx.ModelProto, threads: int | None = None):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings would reach stderr beside connpack's line
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check_classifier(proto: onnx.ModelProto) -> None:
    """One float32 image input (N, C, H, W) and at least one output: else the file is not a classifier."""
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1 or not proto.graph.output:
        raise InputFileError(
            f"the graph has {len(inputs)} inputs and {len(proto.graph.output)} outputs; eval needs "
            "one image input and a (batch, classes) output"
        )
    t = inputs[0].type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT or len(t.shape.dim) != 4:
        raise InputFileError("the graph's input is not a float32 (N, C, H, W) tensor; eval feeds float32 images")


def evaluate(
    proto: onnx.ModelProto,
    dataset: str | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    batch: int = 1000,
    what: str = "the network",
) -> EvalResult:
    """Accuracy of ``proto`` on the test split of its recorded dataset, or of ``dataset`` when asked
    (read in batches: imagefolder:DIR is streamed from disk)."""
    from connpack.contract import dataset_for
    from connpack.exporters.onnx_input import read_contract

    check_classifier(proto)
    record, takes = read_contract(proto, what)
    name, note = dataset_for(record, dataset, what)
    want = tuple(d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:])
    shape = tuple(data.info(name, want[-1] if len(want) == 3 and want[-1] > 0 else 224).in_shape)
    if want and want != shape:
        raise SpecError(
            f"{note + ', but ' if note else ''}model input {want} does not fit dataset '{name}' images {shape}"
        )
    split = data.open_split(name, "test", data_dir, limit, image_size=shape[-1], raw=True)
    stats = None
    if takes == "normalised":
        stats = record or data.info(name, shape[-1])  # no record: the dataset's own statistics, as connpack trains
    correct = 0
    try:  # a graph that passes the checker may still not load or run on these images
        sess = session(proto)
        input_name = sess.get_inputs()[0].name
        for xb, yb in split.loader(data.in_order(len(split), batch)):
            if stats is not None:
                xb = data.normalise(xb, stats.mean, stats.std)
            out = sess.run(None, {input_name: xb.numpy()})[0]
            n = len(yb)
            if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[0] != n:
                raise InputFileError(
                    f"the graph's first output has shape {getattr(out, 'shape', None)} for a batch "
                    f"of {n}; eval needs (batch, classes) scores"
                )
            correct += int((np.argmax(out, axis=1) == yb.numpy()).sum())
    except (InputFileError, DataError):
        raise
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputFileError(f"onnxruntime cannot run the graph: {msg}") from None
    return EvalResult(name, len(split), correct, None if record is None else record.dataset, note)
