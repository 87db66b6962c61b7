"""Sparse ONNX: COO sparse constants where smaller, valid ONNX, same outputs."""

import numpy as np
import onnx
import onnxruntime as ort
import torch

from connpack import data
from connpack.exporters import onnx_dense, onnx_sparse
from connpack.exporters.module import to_module
from connpack.specs import ModelSpec
from tests.test_compact import make_desc


def sparse_nodes(proto):
    return [n for n in proto.graph.node if n.op_type == "Constant" and n.attribute[0].name == "sparse_value"]


def check(desc, proto):
    x, _ = data.load("synthetic-mnist", "test")
    with torch.no_grad():
        ref = to_module(desc)(x).numpy()
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()}
    )[0]
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    assert np.abs(got - ref).max() <= 1e-4
    got_ref = onnx_sparse.reference_evaluator(proto).run(None, {"input": x[:64].numpy()})[0]
    assert np.abs(got_ref - ref[:64]).max() <= 1e-4


def test_sparse_initializers_are_smaller_valid_and_exact(tmp_path):
    desc = make_desc(ModelSpec(arch="lenet300"), density=0.1)
    dense = onnx_dense.to_onnx(desc)
    proto = onnx_sparse.to_onnx(desc, compact=False)
    onnx.checker.check_model(proto, full_check=True)
    nodes = sparse_nodes(proto)
    assert len(nodes) == 3
    for node in nodes:
        sp = node.attribute[0].sparse_tensor
        idx = onnx.numpy_helper.to_array(sp.indices)
        assert sp.indices.data_type == onnx.TensorProto.INT64 and idx.ndim == 1
        assert np.all(np.diff(idx) > 0)
    assert len(proto.SerializeToString()) < 0.4 * len(dense.SerializeToString())
    check(desc, proto)
    size = (tmp_path / "m.onnx").write_bytes(onnx_sparse.to_onnx(desc, True).SerializeToString())
    assert size == (tmp_path / "m.onnx").stat().st_size


def test_tensors_denser_than_a_third_stay_dense():
    desc = make_desc(ModelSpec(arch="lenet300", width=0.5), density=0.5)
    proto = onnx_sparse.sparsify(onnx_dense.to_onnx(desc))
    assert sparse_nodes(proto) == []
    desc = make_desc(ModelSpec(arch="lenet300", width=0.5), density=0.3)
    assert len(sparse_nodes(onnx_sparse.sparsify(onnx_dense.to_onnx(desc)))) == 3


def test_compacted_sparse_graph_of_a_conv_net():
    desc = make_desc(ModelSpec(arch="conv2", width=0.125, batchnorm="frozen"), density=0.2)
    proto = onnx_sparse.to_onnx(desc)
    assert sparse_nodes(proto)
    check(desc, proto)
