"""Structural compaction: dead units are removed exactly, outputs are unchanged."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from torch import nn

from connpack import data, models
from connpack.errors import SpecError
from connpack.exporters import compact, ops
from connpack.exporters.module import to_module
from connpack.specs import ModelSpec, NetworkSpec
from connpack.trainers import connectivity, make_config, methods


def make_desc(model: ModelSpec, density: float = 0.8, seed: int = 0):
    spec = NetworkSpec(model=model, method="prune")
    net = models.build(spec)
    methods.get("prune").configure(net, spec, make_config(method="prune"))
    desc = connectivity.describe(net, spec)
    rs = np.random.default_rng(seed)
    for code in desc.tensors.values():
        code.bits[...] = rs.random(code.shape) < density
    for key, v in desc.dense.items():
        if key.endswith("bias") or key.endswith("running_mean"):
            desc.dense[key] = rs.normal(size=v.shape).astype(np.float32)
        if key.endswith("running_var"):
            desc.dense[key] = rs.uniform(0.5, 2.0, size=v.shape).astype(np.float32)
    return desc


def outputs(proto, x):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0], ReferenceEvaluator(proto).run(None, {"input": x})[0]


def check_same(desc, proto, n=64):
    x, _ = data.load("synthetic-mnist", "test")
    with torch.no_grad():
        ref = to_module(desc)(x).numpy()
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    assert np.abs(got - ref).max() <= 1e-4
    got_ref = ReferenceEvaluator(proto).run(None, {"input": x[:n].numpy()})[0]
    assert np.abs(got_ref - ref[:n]).max() <= 1e-4


def test_known_dead_units_are_removed_exactly():
    desc = make_desc(ModelSpec(arch="lenet300", width=0.1))  # 784-30-10-10, no biases
    names = list(desc.tensors)
    w1, w2, w3 = (desc.tensors[n].bits for n in names)
    w1[[3, 7]] = False  # no incoming weights: ReLU(0) = 0
    w2[:, 5] = False  # hidden-1 unit 5 feeds nothing
    w2[2] = False  # hidden-2 unit 2: no incoming weights
    w3[:, 4] = False  # hidden-2 unit 4 feeds nothing
    w2[6] = False
    w2[6, 3] = True  # hidden-2 unit 6 only reads unit 3, which is dead -> dead too
    proto, info = compact.compact_onnx(desc)
    l1, l2 = (n.rsplit(".", 1)[0] for n in names[:2])
    assert info.units == {l1: (30, 27), l2: (10, 7)}
    assert info.units_removed == pytest.approx(6 / 40)
    sd = desc.state_dict()
    keep1 = np.setdiff1d(np.arange(30), [3, 5, 7])
    keep2 = np.setdiff1d(np.arange(10), [2, 4, 6])
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert np.array_equal(inits[names[0]], sd[names[0]][keep1])
    assert np.array_equal(inits[names[1]], sd[names[1]][keep2][:, keep1])
    assert np.array_equal(inits[names[2]], sd[names[2]][:, keep2])
    assert info.effective_sparsity > info.explicit_sparsity
    check_same(desc, proto)


def test_constant_units_with_bias_are_folded_into_the_next_bias():
    desc = make_desc(ModelSpec(arch="lenet300", width=0.1, bias=True))
    names = list(desc.tensors)
    desc.tensors[names[0]].bits[[0, 1]] = False  # constant ReLU(bias) units: folded, not computed
    proto, info = compact.compact_onnx(desc)
    assert info.units[names[0].rsplit(".", 1)[0]] == (30, 28)
    check_same(desc, proto)


@pytest.mark.parametrize("batchnorm,bias", [("frozen", False), ("affine", True)])
def test_conv_channels_are_removed_through_pooling_and_flatten(batchnorm, bias):
    desc = make_desc(ModelSpec(arch="conv2", width=0.125, batchnorm=batchnorm, bias=bias))
    names = list(desc.tensors)
    desc.tensors[names[1]].bits[:, 2] = False  # conv1 channel 2 feeds nothing
    desc.tensors[names[2]].bits[:, :196] = False  # first conv2 channel (its 14*14 features) feeds nothing
    proto, info = compact.compact_onnx(desc)
    conv1, conv2 = (n.rsplit(".", 1)[0] for n in names[:2])
    assert info.units[conv1] == (8, 7) and info.units[conv2] == (8, 7)
    check_same(desc, proto)


def test_nothing_dead_means_nothing_removed():
    desc = make_desc(ModelSpec(arch="lenet300", width=0.1), density=0.9)
    proto, info = compact.compact_onnx(desc)
    assert info.units_removed == 0.0
    check_same(desc, proto)


def test_non_sequential_networks_are_refused():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.fc(x)

    with pytest.raises(SpecError, match="residual"):
        ops.ops_from_module(nn.Sequential(nn.Flatten(), Residual()))
    with pytest.raises(SpecError, match="sequential"):
        ops.ops_from_module(Residual())
