"""Benchmark-sized checks on the real MNIST (run with `make bench` / `pytest -m slow`; MNIST must have been
fetched with `connpack data fetch mnist`)."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from connpack import data
from connpack.exporters import onnx_dense
from connpack.exporters.module import to_module
from connpack.packing import pack, unpack
from connpack.reporting import report
from connpack.trainers import make_config, train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method,variant", [("flip", "minimal"), ("prune", "free")])
def test_onnx_equals_pytorch_on_the_whole_mnist_test_split(tmp_path, method, variant):
    desc, metrics = train(make_config(method=method, variant=variant, epochs=1, limit=20000, device="cpu"))
    pack(desc, tmp_path / "m.cpk")
    proto = onnx_dense.to_onnx(unpack(tmp_path / "m.cpk"))
    x, y = data.load("mnist", "test")
    with torch.no_grad():
        ref = to_module(desc)(x).numpy()
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()}
    )[0]
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    assert np.abs(got - ref).max() <= 1e-4
    assert (ref.argmax(1) == y.numpy()).mean() == pytest.approx(metrics[-1]["test_acc"], abs=1e-9)
    got_ref = ReferenceEvaluator(proto).run(None, {"input": x[:500].numpy()})[0]
    assert np.abs(got_ref - ref[:500]).max() <= 1e-4
    rep = report(tmp_path / "m.cpk")
    assert rep.file_bytes <= 1.15 * (rep.bound_bits / 8 + rep.header_bytes)
