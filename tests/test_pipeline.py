"""End to end on synthetic data: train -> pack -> unpack -> ONNX -> onnxruntime/ReferenceEvaluator."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from connpack import data, runfile
from connpack.exporters import onnx_dense
from connpack.exporters.module import to_module
from connpack.packing import pack, unpack
from connpack.reporting import entropy_bits, report

METHODS = ["flip-free", "flip-minimal", "prune-free", "prune-minimal", "baseline-free"]


@pytest.mark.parametrize("name", METHODS)
def test_round_trip_is_bit_exact_and_pack_is_deterministic(trained, tmp_path, name):
    desc, _ = runfile.load(trained[name])
    a, b = tmp_path / "a.cpk", tmp_path / "b.cpk"
    pack(desc, a)
    pack(desc, b)
    assert a.read_bytes() == b.read_bytes()
    back = unpack(a)
    assert list(back.tensors) == list(desc.tensors)
    for key, code in desc.tensors.items():
        got = back.tensors[key]
        assert got.kind == code.kind
        if code.bits is not None:
            assert np.array_equal(got.bits, code.bits)
    sd0, sd1 = desc.state_dict(), back.state_dict()
    assert sd0.keys() == sd1.keys()
    for key in sd0:
        assert sd0[key].tobytes() == sd1[key].tobytes(), key


@pytest.mark.parametrize("name", ["flip-minimal", "prune-free", "baseline-free"])
def test_onnx_matches_pytorch_in_onnxruntime_and_reference_evaluator(trained, tmp_path, name):
    desc, _ = runfile.load(trained[name])
    torch_model = to_module(desc)
    pack(desc, tmp_path / "m.cpk")
    (tmp_path / "m.onnx").write_bytes(onnx_dense.to_onnx(unpack(tmp_path / "m.cpk")).SerializeToString())
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    x, _ = data.load("synthetic-mnist", "test")
    with torch.no_grad():
        ref = torch_model(x).numpy()
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - ref).max() <= 1e-4
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    ev = ReferenceEvaluator(proto)
    got_ref = ev.run(None, {"input": x[:64].numpy()})[0]
    assert np.abs(got_ref - ref[:64]).max() <= 1e-4
    # dynamic batch dimension
    assert sess.run(None, {"input": x[:1].numpy()})[0].shape == (1, 10)


def test_minimal_variants_change_fewer_connections(trained):
    def ones(name):
        desc, _ = runfile.load(trained[name])
        return sum(int(c.bits.sum()) for c in desc.tensors.values()), sum(c.size for c in desc.tensors.values())

    flipped_free, n = ones("flip-free")
    flipped_min, _ = ones("flip-minimal")
    kept_free, _ = ones("prune-free")
    kept_min, _ = ones("prune-minimal")
    assert flipped_min < flipped_free
    assert n - kept_min < n - kept_free


def test_minimal_flipping_file_is_close_to_the_entropy_bound(trained, tmp_path):
    desc, _ = runfile.load(trained["flip-minimal"])
    pack(desc, tmp_path / "m.cpk")
    rep = report(tmp_path / "m.cpk")
    bound_bits = sum(entropy_bits(c.size, int(c.bits.sum())) for c in desc.tensors.values())
    assert rep.bound_bits == pytest.approx(bound_bits)
    assert rep.file_bytes <= 1.15 * (bound_bits / 8 + rep.header_bytes)
    assert rep.file_bytes * 50 < rep.float32_bytes
