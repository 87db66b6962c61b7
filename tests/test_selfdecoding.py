"""Self-decoding ONNX: packed bits in the graph, weights rebuilt with standard operators."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from connpack import data, runfile
from connpack.description import TensorCode
from connpack.errors import SpecError
from connpack.exporters import onnx_dense, onnx_selfdecoding
from connpack.exporters.module import to_module
from connpack.packing import pack, unpack
from connpack.specs import ModelSpec
from tests.conftest import run_cli
from tests.test_compact import make_desc


def check(desc, proto):
    onnx.checker.check_model(proto, full_check=True)
    x, _ = data.load("synthetic-mnist", "test")
    with torch.no_grad():
        ref = to_module(desc)(x).numpy()
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    assert np.abs(got - ref).max() <= 1e-4
    got_ref = ReferenceEvaluator(proto).run(None, {"input": x[:64].numpy()})[0]
    assert np.abs(got_ref - ref[:64]).max() <= 1e-4
    assert not {i.name for i in proto.graph.initializer} & set(desc.tensors)  # no float weights stored


def decoded_weights(proto, names):
    """Run the graph with the weights as extra outputs."""
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    x = np.zeros((1, *[d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]), np.float32)
    return dict(zip(names, ReferenceEvaluator(m).run(names, {"input": x})))


def test_free_flipping_lenet_is_as_small_as_its_raw_cpk(trained, tmp_path):
    """The graph holds raw bits (1 per weight), so it is compared with the same model packed with raw bits."""
    desc, _ = runfile.load(trained["flip-free"])
    cpk = pack(desc, tmp_path / "m.cpk", codec="raw")
    desc = unpack(tmp_path / "m.cpk")
    size = onnx_selfdecoding.export(desc, tmp_path / "m.onnx")
    dense = len(onnx_dense.to_onnx(desc).SerializeToString())
    assert size <= 1.2 * cpk
    assert size * 20 <= dense
    proto = onnx.load(str(tmp_path / "m.onnx"))
    check(desc, proto)
    got = decoded_weights(proto, list(desc.tensors))
    sd = desc.state_dict()
    for name, w in got.items():
        assert w.tobytes() == sd[name].tobytes(), name


def test_pruned_signed_constant_weights_decode_as_ternary(trained):
    desc, _ = runfile.load(trained["prune-minimal"])
    proto = onnx_selfdecoding.to_onnx(desc)
    assert any(n.op_type == "CumSum" for n in proto.graph.node)
    check(desc, proto)
    sd = desc.state_dict()
    for name, w in decoded_weights(proto, list(desc.tensors)).items():
        assert w.tobytes() == sd[name].tobytes(), name


def test_asni_ternary_centroids_and_conv_with_batchnorm():
    desc = make_desc(ModelSpec(arch="conv2", width=0.125, batchnorm="frozen"), density=0.4)
    rs = np.random.default_rng(1)
    for name, code in list(desc.tensors.items()):
        bits = code.bits.copy()
        desc.tensors[name] = TensorCode("ternary", code.shape, bits=bits, signs=rs.random(int(bits.sum())) < 0.5,
                                        centroids=(-0.037, 0.052))
    desc.weight_hashes = {}
    proto = onnx_selfdecoding.to_onnx(desc)
    check(desc, proto)


def test_networks_that_are_not_binary_or_ternary_are_refused(trained, tmp_path, runner):
    desc, _ = runfile.load(trained["baseline-free"])
    first = next(iter(desc.tensors))
    with pytest.raises(SpecError, match=f"'{first}'"):
        onnx_selfdecoding.to_onnx(desc)
    pack(desc, tmp_path / "b.cpk")
    r = run_cli(runner, "unpack", tmp_path / "b.cpk", "--onnx", tmp_path / "b.onnx", "--kind", "self-decoding")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and first in r.stderr
    assert not (tmp_path / "b.onnx").exists()
