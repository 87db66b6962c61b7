"""Self-decoding ONNX: Philox and coded bits in the graph, weights rebuilt bit-identically with standard operators."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

from connpack import data, models, runfile
from connpack.description import TensorCode
from connpack.errors import SpecError
from connpack.exporters import onnx_bitcode, onnx_dense, onnx_selfdecoding
from connpack.exporters.module import to_module
from connpack.exporters.onnx_builder import Builder
from connpack.packing import pack, unpack
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from connpack.trainers import connectivity, make_config, methods
from tests.conftest import run_cli
from tests.test_compact import make_desc

INITS = ("signed_constant", "kaiming_normal", "kaiming_uniform", "xavier_normal")


def check(desc, proto):
    onnx.checker.check_model(proto, full_check=True)
    x, _ = data.load("synthetic-mnist", "test")
    with torch.no_grad():
        ref = to_module(desc)(x).numpy()
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x.numpy()}
    )[0]
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


def tiny(
    method: str, init: str, density: float, *, arch: str = "lenet300", inits: dict | None = None, seed: int = 5, **model
):
    """A small mask ("prune") or flip network over generated weights, with random bits of the given density.

    The RNG seed is above 2**32, so both Philox key words matter."""
    spec = NetworkSpec(
        model=ModelSpec(arch=arch, **model),
        rng=RngSpec(seed=2**40 + 12345),
        method=method,
        init=InitSpec(init),
        inits=inits or {},
    )
    net = models.build(spec)
    methods.get(method).configure(net, spec, make_config(method=method))
    desc = connectivity.describe(net, spec)
    rs = np.random.default_rng(seed)
    for code in desc.tensors.values():
        code.bits[...] = rs.random(code.shape) < density
    return desc


def check_weights(desc, proto, evaluator=False):
    """Every decoded weight equals the one ``connpack unpack`` materialises, byte for byte."""
    sd = desc.state_dict()
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in desc.tensors)
    x = np.zeros((1, *desc.spec.model.in_shape), np.float32)
    runs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            list(desc.tensors), {"input": x}
        )
    ]
    if evaluator:
        runs.append(ReferenceEvaluator(m).run(list(desc.tensors), {"input": x}))
    for got in runs:
        for name, w in zip(desc.tensors, got):
            assert w.dtype == np.float32 and w.tobytes() == sd[name].tobytes(), name


def outputs_match(desc, proto, evaluator=True):
    x = np.random.default_rng(0).random((16, *desc.spec.model.in_shape), dtype=np.float32)
    with torch.no_grad():
        ref = to_module(desc)(torch.from_numpy(x)).numpy()
    got = [
        ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    ]
    if evaluator:
        got.append(ReferenceEvaluator(proto).run(None, {"input": x})[0])
    for g in got:
        assert np.abs(g - ref).max() <= 1e-5 and np.array_equal(g.argmax(1), ref.argmax(1))


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("method", ["prune", "flip"])
def test_every_init_regenerates_bit_identically_in_both_runtimes(method, init):
    desc = tiny(method, init, 0.3, in_shape=(1, 5, 5), width=0.03)
    proto = onnx_selfdecoding.to_onnx(desc)
    assert not {i.name for i in proto.graph.initializer} & set(desc.tensors)  # no float weights stored
    check_weights(desc, proto, evaluator=True)
    outputs_match(desc, proto)


def test_in_graph_ln_is_exact_at_every_power_of_two():
    """The graph finds frexp's exponent through a nudged Log; the edges of every octave match rng's program."""
    from connpack import rng
    from connpack.exporters import onnx_rng

    k1 = np.unique([v for j in range(25) for v in (2**j - 1, 2**j, 2**j + 1) if 1 <= v <= 2**24]).astype(np.uint64)
    nodes, inits = [], []
    b = Builder(nodes, inits)
    out = onnx_rng._ln(b, b.const(k1))
    graph = onnx.helper.make_graph(
        nodes, "g", [], [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.DOUBLE, [k1.size])], initializer=inits
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 9
    want = rng._ln_portable(k1.astype(np.float64) * 2.0**-24)
    for got in (
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})[0],
        ReferenceEvaluator(model).run(None, {})[0],
    ):
        assert got.tobytes() == want.tobytes()


def test_mixed_inits_and_a_conv_network_with_batchnorm():
    """Per-tensor init overrides: the generator serves four distributions from one Philox batch."""
    base = tiny("prune", "signed_constant", 0.5, arch="conv2", in_shape=(1, 8, 8), width=0.125, batchnorm="frozen")
    names = list(base.tensors)
    inits = {name: InitSpec(INITS[i % 4], p_positive=0.3) for i, name in enumerate(names)}
    desc = tiny(
        "prune", "signed_constant", 0.2, arch="conv2", in_shape=(1, 8, 8), width=0.125, batchnorm="frozen", inits=inits
    )
    proto = onnx_selfdecoding.to_onnx(desc)
    check_weights(desc, proto, evaluator=True)
    outputs_match(desc, proto)


def test_lenet_weights_are_bit_identical_and_fold_at_session_creation():
    """Full-size LeNet-300-100 (onnxruntime only): every decoding node folds, so the optimised graph is the
    plain network."""
    desc = tiny("flip", "kaiming_normal", 0.05)
    proto = onnx_selfdecoding.to_onnx(desc)
    check_weights(desc, proto)
    outputs_match(desc, proto, evaluator=False)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(__import__("tempfile").mkdtemp()) + "/opt.onnx"
    ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node}
    assert ops <= {"Gemm", "FusedGemm", "Relu", "Flatten", "Reshape"}, ops


@pytest.mark.parametrize("case", ["sparse", "dense", "empty", "full", "rows", "cols", "tiny"])
def test_bit_codes_round_trip_in_numpy_and_in_the_graph(case):
    rs = np.random.default_rng(3)
    shape = (40, 200)
    border = (rs.random((300, 784)) < 0.04) & (np.arange(784) >= 400)[None, :]  # dead inputs
    bits = {
        "sparse": rs.random(shape) < 0.03,
        "dense": rs.random(shape) < 0.95,
        "empty": np.zeros(shape, bool),
        "full": np.ones(shape, bool),
        "rows": border.T.copy(),
        "cols": ~border,
        "tiny": np.array([[True]]),
    }[case]
    codes = [onnx_bitcode.encode(bits, onnx_bitcode.view_of(bits.shape)), onnx_bitcode.encode(bits[:5].reshape(-1))]
    if case in ("sparse", "rows", "empty"):
        assert codes[0].kind == "rice" and not codes[0].invert
    if case in ("dense", "cols", "full"):
        assert codes[0].kind == "rice" and codes[0].invert
    if case in ("rows", "cols"):
        assert "rows" in codes[0].arrays
        assert codes[0].size < onnx_bitcode.encode(bits).size  # removing dead rows/columns pays
    nodes, inits = [], []
    b = Builder(nodes, inits)
    dec = onnx_bitcode.Decoder(b, codes)
    outs = [dec(c) for c in codes]
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [],
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.BOOL, [c.n]) for o, c in zip(outs, codes)],
        initializer=inits,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 9
    b.finish(model)
    onnx.checker.check_model(model, full_check=True)
    want = [bits.reshape(-1), bits[:5].reshape(-1)]
    for got in (
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {}),
        ReferenceEvaluator(model).run(None, {}),
    ):
        for g, w, c in zip(got, want, codes):
            assert np.array_equal(onnx_bitcode.decode_python(c), w)
            assert np.array_equal(g, w)


def test_sparse_flips_code_below_one_bit_per_weight(trained, tmp_path):
    """The flips of the minimal variant are sparse: the graph is smaller than the same model packed with raw
    bits, and ~20x smaller than the dense graph."""
    desc, _ = runfile.load(trained["flip-minimal"])
    cpk = pack(desc, tmp_path / "m.cpk", codec="raw")
    desc = unpack(tmp_path / "m.cpk")
    size = (tmp_path / "m.onnx").write_bytes(onnx_selfdecoding.to_onnx(desc).SerializeToString())
    dense = len(onnx_dense.to_onnx(desc).SerializeToString())
    assert size <= cpk
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
        desc.tensors[name] = TensorCode(
            "ternary", code.shape, bits=bits, signs=rs.random(int(bits.sum())) < 0.5, centroids=(-0.037, 0.052)
        )
    desc.weight_hashes = {}
    proto = onnx_selfdecoding.to_onnx(desc)
    check(desc, proto)


def test_trained_values_are_refused_naming_the_tensor(trained, tmp_path, runner):
    desc, _ = runfile.load(trained["baseline-free"])
    first = next(iter(desc.tensors))
    with pytest.raises(SpecError, match=f"'{first}'"):
        onnx_selfdecoding.to_onnx(desc)
    pack(desc, tmp_path / "b.cpk")
    r = run_cli(runner, "unpack", tmp_path / "b.cpk", "--onnx", tmp_path / "b.onnx", "--kind", "self-decoding")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and first in r.stderr
    assert not (tmp_path / "b.onnx").exists()
