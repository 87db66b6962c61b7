"""The data contract (connpack.contract, cpk.md 7.9): recorded by train in model.pt, copied by pack into the
.cpk, given by pack --dataset/--mean/--std for imported models, used by eval/compare/bench and the ONNX
exporters; never guessed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from connpack import data, formats, runfile
from connpack.contract import DataContract, contract_of, dataset_for
from connpack.description import Description
from connpack.errors import SpecError
from connpack.packing import pack, unpack
from tests.conftest import run_cli
from tests.test_cli import _one_line_error
from tests.test_golden_networks import VECTORS, golden_networks


def _flip(dataset: str | None = "mnist") -> Description:
    desc, _ = golden_networks()["flip"]
    spec = replace(desc.spec, hparams={"dataset": dataset} if dataset else {})
    return Description(spec, desc.tensors)


# ------------------------------------------------------------------------------------------- the record
def test_registry_contracts():
    fm = data.contract("fashion-mnist")
    assert (fm.dataset, fm.mean, fm.std, fm.range) == ("fashion-mnist", (0.286,), (0.353,), (0.0, 1.0))
    assert fm.classes[0] == "T-shirt/top" and len(fm.classes) == 10
    assert data.contract("mnist").classes == tuple("0123456789")
    assert data.contract("synthetic-mnist").range is None  # unbounded synthetic inputs: not recorded
    assert data.contract("cifar10", std=(1, 1, 1)).std == (1.0, 1.0, 1.0)
    with pytest.raises(SpecError, match="give its mean and std"):
        data.contract("my-scans")
    assert data.contract("my-scans", (0.5,), (0.25,)) == DataContract("my-scans", (0.5,), (0.25,))


def test_raw_load_is_the_normalised_load_before_normalising():
    x, y = data.load("synthetic-mnist", "test", limit=5)
    xr, yr = data.load("synthetic-mnist", "test", limit=5, raw=True)
    assert torch.equal(x, xr) and torch.equal(y, yr)  # synthetic: generated normalised (mean 0, std 1)


def test_dataset_for_never_guesses():
    fm = data.contract("fashion-mnist")
    assert dataset_for(fm, None) == ("fashion-mnist", None)
    assert dataset_for(fm, "fashion-mnist") == ("fashion-mnist", None)
    name, note = dataset_for(fm, "mnist", "fm.cpk")
    assert name == "mnist" and note == "fm.cpk was trained on fashion-mnist; evaluating on mnist as asked"
    assert dataset_for(None, "mnist")[0] == "mnist"
    with pytest.raises(SpecError, match="records no dataset"):
        dataset_for(None, None)
    meta = formats.read(VECTORS / "net_data.cpk").meta  # the .cpk metadata works as well (for pack's callers)
    assert dataset_for(meta, None) == ("fashion-mnist", None) and contract_of(meta).classes[-1] == "Ankle boot"
    assert contract_of(formats.read(VECTORS / "net_flip.cpk").meta) is None


# ------------------------------------------------------------------------------------------- model.pt
def test_run_file_records_the_contract(tmp_path):
    runfile.save(tmp_path / "m.pt", _flip("fashion-mnist"))
    assert runfile.load(tmp_path / "m.pt")[0].data == data.contract("fashion-mnist")
    runfile.save(tmp_path / "c.pt", Description(_flip().spec, _flip().tensors, data=DataContract("x", (1,), (2,))))
    assert runfile.load(tmp_path / "c.pt")[0].data == DataContract("x", (1,), (2,))  # an explicit record wins


def test_run_file_written_before_the_record_reads_its_training_dataset(tmp_path):
    runfile.save(tmp_path / "m.pt", _flip("fashion-mnist"))
    obj = torch.load(tmp_path / "m.pt", weights_only=True)
    del obj["data"]  # as written before: the trainer's hparams still name the dataset
    torch.save(obj, tmp_path / "old.pt")
    assert runfile.load(tmp_path / "old.pt")[0].data == data.contract("fashion-mnist")
    runfile.save(tmp_path / "none.pt", _flip(None))
    assert "data" not in torch.load(tmp_path / "none.pt", weights_only=True)
    assert runfile.load(tmp_path / "none.pt")[0].data is None


def test_pack_copies_the_run_file_record(runner, tmp_path):
    runfile.save(tmp_path / "m.pt", _flip("fashion-mnist"))
    r = run_cli(runner, "pack", tmp_path / "m.pt", "-o", tmp_path / "m.cpk")
    assert r.exit_code == 0, r.stderr
    assert "data: fashion-mnist; raw input in [0, 1], normalised by mean (0.286) std (0.353)" in r.stdout
    assert formats.read(tmp_path / "m.cpk").meta["data"] == data.contract("fashion-mnist").to_meta()
    r = run_cli(runner, "pack", tmp_path / "m.pt", "-o", tmp_path / "x.cpk", "--dataset", "mnist")
    _one_line_error(r, 2)  # the record comes from training: not overridden
    assert "records dataset fashion-mnist; --dataset mnist contradicts it" in r.stderr
    assert not (tmp_path / "x.cpk").exists()


# ------------------------------------------------------------------------------------------- imports
@pytest.fixture
def pruned_pt(tmp_path) -> Path:
    """A LeNet-300-100-shaped model pruned with torch.nn.utils.prune (a stranger's model: no record)."""
    from torch import nn
    from torch.nn.utils import prune

    torch.manual_seed(0)
    m = nn.Module()
    m.fc1, m.fc2, m.fc3 = (
        nn.Linear(784, 300, bias=False),
        nn.Linear(300, 100, bias=False),
        nn.Linear(100, 10, bias=False),
    )
    for layer in (m.fc1, m.fc2, m.fc3):
        prune.l1_unstructured(layer, "weight", 0.8)
    torch.save(m.state_dict(), tmp_path / "pruned.pt")
    return tmp_path / "pruned.pt"


def test_imported_model_without_dataset_records_none_and_says_so(runner, pruned_pt, tmp_path):
    r = run_cli(runner, "pack", pruned_pt, "-o", tmp_path / "a.cpk")
    assert r.exit_code == 0, r.stderr
    assert "no data record" in r.stdout
    assert "data" not in formats.read(tmp_path / "a.cpk").meta
    r = run_cli(runner, "report", tmp_path / "a.cpk")
    assert "data: unknown (no data record in this file; input 1×28×28, 10 outputs)" in r.stdout


@pytest.mark.parametrize(
    "args,record",
    [
        (["--dataset", "fashion-mnist"], data.contract("fashion-mnist")),
        (["--dataset", "mnist", "--mean", "0.5", "--std", "0.5"], data.contract("mnist", (0.5,), (0.5,))),
        (["--dataset", "scans", "--mean", "0.25", "--std", "2"], DataContract("scans", (0.25,), (2.0,))),
    ],
)
def test_imported_model_with_dataset_options(runner, pruned_pt, tmp_path, args, record):
    r = run_cli(runner, "pack", pruned_pt, "-o", tmp_path / "a.cpk", *args)
    assert r.exit_code == 0, r.stderr
    assert unpack(tmp_path / "a.cpk").data == record
    r = run_cli(runner, "report", tmp_path / "a.cpk")
    assert f"data: {record.dataset} — input 1×28×28" in r.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--dataset", "scans", "--mean", "0.5"], "give its mean and std"),
        (["--mean", "0.5", "--std", "0.5"], "--mean/--std need --dataset NAME"),
        (["--dataset", "cifar10"], "the network takes 1 input channel"),
        (["--dataset", "mnist", "--std", "0"], "std values must be finite numbers > 0"),
        (["--dataset", "mnist", "--mean", "a,b"], "--mean must be comma-separated numbers"),
        (["--dataset", "mnist", "--mean", "nan"], "--mean must be finite numbers"),
        (["--dataset", "bad\x07name", "--mean", "0", "--std", "1"], "printable text"),
    ],
)
def test_bad_dataset_options_are_usage_errors(runner, pruned_pt, tmp_path, args, needle):
    r = run_cli(runner, "pack", pruned_pt, "-o", tmp_path / "a.cpk", *args)
    _one_line_error(r, 2)
    assert needle in r.stderr
    assert not (tmp_path / "a.cpk").exists()


def test_old_file_reads_identically_with_unknown_shown(runner, tmp_path):
    """A .cpk written before the record (every golden vector but net_data) decodes to the same tensors; its
    report says the contract is unknown; re-packing it keeps it byte-identical (no record is invented)."""
    old = VECTORS / "net_flip.cpk"
    desc = unpack(old)
    assert desc.data is None
    pack(desc, tmp_path / "again.cpk")
    assert (tmp_path / "again.cpk").read_bytes() == old.read_bytes()
    r = run_cli(runner, "report", old)
    assert r.exit_code == 0 and "data: unknown" in r.stdout
    assert json.loads(run_cli(runner, "report", old, "--json").stdout)["data"] is None
    got = json.loads(run_cli(runner, "report", VECTORS / "net_data.cpk", "--json").stdout)["data"]
    assert got["dataset"] == "fashion-mnist" and got["classes"][0] == "T-shirt/top"
    assert np.array_equal(unpack(VECTORS / "net_data.cpk").state_dict()["fc1.weight"], desc.state_dict()["fc1.weight"])


# ------------------------------------------------------------------------------------------- ONNX
KINDS = ("dense", "compact", "sparse-init", "sparse", "self-decoding")
SKEWED = DataContract("synthetic-mnist", (0.5,), (2.0,), (0.0, 1.0), tuple("abcdefghij"))  # not the identity


@pytest.fixture(scope="module")
def net28(tmp_path_factory) -> Path:
    """A small flip network on 1x28x28 inputs (synthetic-mnist's), recording a normalisation that is not the
    identity, packed."""
    from connpack.description import TensorCode
    from connpack.specs import ModelSpec, NetworkSpec, RngSpec

    spec = NetworkSpec(model=ModelSpec(arch="lenet300", in_shape=(1, 28, 28), width=0.05), rng=RngSpec(seed=3))
    g = np.random.default_rng(0)
    shapes = {"fc1.weight": (15, 784), "fc2.weight": (5, 15), "fc3.weight": (10, 5)}
    tensors = {n: TensorCode("flip", s, bits=g.random(s) < 0.2) for n, s in shapes.items()}
    path = tmp_path_factory.mktemp("net28") / "net.cpk"
    pack(Description(spec, tensors, data=SKEWED), path)
    return path


def _run(proto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("kind", KINDS)
def test_every_onnx_kind_takes_raw_input_and_carries_the_contract(net28, kind):
    from connpack import exporters
    from connpack.exporters.module import to_module
    from connpack.exporters.onnx_input import read_contract

    desc = unpack(net28)
    x = np.random.default_rng(1).random((16, 1, 28, 28)).astype(np.float32)  # raw pixels in [0, 1]
    xn = data.normalise(torch.from_numpy(x), SKEWED.mean, SKEWED.std)
    with torch.no_grad():
        want = to_module(desc)(xn).numpy()
    raw = exporters.to_onnx(desc, kind)  # raw input by default: the network records its contract
    norm = exporters.to_onnx(desc, kind, "normalised")
    got_raw, got_norm = _run(raw, x), _run(norm, xn.numpy())
    assert np.array_equal(got_raw, got_norm)  # Sub/Div in the graph = the trainer's preprocessing, bit for bit
    assert np.abs(got_raw - want).max() < 1e-5 and (got_raw.argmax(1) == want.argmax(1)).all()
    assert [n.op_type for n in raw.graph.node[:2]] == ["Sub", "Div"]
    assert not any(n.op_type == "Sub" and n.name.startswith("connpack") for n in norm.graph.node)
    props = {p.key: p.value for p in raw.metadata_props}
    assert props["input"] == "raw" and props["dataset"] == "synthetic-mnist" and props["seed"] == "3"
    assert json.loads(props["classes"]) == list("abcdefghij") and json.loads(props["mean"]) == [0.5]
    from connpack import __version__

    assert props["connpack_version"] == __version__
    assert read_contract(raw) == (SKEWED, "raw") and read_contract(norm) == (SKEWED, "normalised")


def test_unpack_input_options(runner, net28, tmp_path):
    r = run_cli(runner, "unpack", net28, "--onnx", tmp_path / "raw.onnx")
    assert (
        r.exit_code == 0
        and "synthetic-mnist; raw input in [0, 1], normalised by mean (0.5) std (2), in the graph" in r.stdout
    )
    r = run_cli(runner, "unpack", net28, "--onnx", tmp_path / "n.onnx", "--normalised-input")
    assert r.exit_code == 0 and "normalised input" in r.stdout
    old = VECTORS / "net_flip.cpk"  # no record: normalised input, said so; raw input refused
    r = run_cli(runner, "unpack", old, "--onnx", tmp_path / "old.onnx")
    assert r.exit_code == 0 and "no data record" in r.stdout
    r = run_cli(runner, "unpack", old, "--onnx", tmp_path / "bad.onnx", "--raw-input")
    _one_line_error(r, 2)
    assert "normalisation of its input is unknown" in r.stderr and not (tmp_path / "bad.onnx").exists()


def test_eval_uses_the_record_and_never_guesses(runner, net28, tmp_path):
    r = run_cli(runner, "eval", net28, "--json")
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["dataset"] == "synthetic-mnist" and res["trained_on"] == "synthetic-mnist" and res["note"] is None
    for flag in ("--raw-input", "--normalised-input"):  # an .onnx: its metadata says how to feed it
        run_cli(runner, "unpack", net28, "--onnx", tmp_path / f"{flag}.onnx", flag)
        got = json.loads(run_cli(runner, "eval", tmp_path / f"{flag}.onnx", "--json").stdout)
        assert got["correct"] == res["correct"] and got["dataset"] == "synthetic-mnist"
    r = run_cli(runner, "eval", net28, "--dataset", "synthetic-cifar")  # asked: both names said, then refused
    _one_line_error(r, 2)
    assert "trained on synthetic-mnist; evaluating on synthetic-cifar as asked, but model input" in r.stderr
    old = VECTORS / "net_flip.cpk"
    r = run_cli(runner, "eval", old)
    _one_line_error(r, 2)
    assert "records no dataset" in r.stderr and "--dataset" in r.stderr
    run_cli(runner, "unpack", old, "--onnx", tmp_path / "old.onnx")
    _one_line_error(run_cli(runner, "eval", tmp_path / "old.onnx"), 2)


def test_eval_on_another_dataset_says_so(net28):
    from connpack.evaluate import evaluate, load_onnx

    res = evaluate(load_onnx(net28), "synthetic-mnist", limit=50, what="net.cpk")
    assert res.note is None and res.trained_on == "synthetic-mnist"
    desc = unpack(net28)
    other = Description(desc.spec, desc.tensors, data=replace(SKEWED, dataset="mnist"))
    from connpack import exporters

    res = evaluate(exporters.to_onnx(other), "synthetic-mnist", limit=50, what="fm.cpk")
    assert res.note == "fm.cpk was trained on mnist; evaluating on synthetic-mnist as asked"


def test_compare_uses_the_record(runner, net28, tmp_path):
    from connpack import compare

    desc = unpack(net28)
    res = compare.compare([desc, desc], ["a", "b"], limit=40)
    assert res.dataset == "synthetic-mnist" and res.notes == [] and res.agreement[(0, 1)] == 1.0
    legacy = Description(desc.spec, desc.tensors)
    with pytest.raises(SpecError, match="do not record one dataset"):
        compare.compare([desc, legacy], ["a", "old"], limit=40)
    res = compare.compare([desc, legacy], ["a", "old"], dataset="synthetic-mnist", limit=40)
    assert res.notes == ["old records no dataset; evaluating on synthetic-mnist as asked"]
    # the recorded normalisation is applied: the legacy copy (dataset's own, identity) predicts differently
    x, _ = data.load("synthetic-mnist", "test", limit=40, raw=True)
    probs, _ = compare.predictions([desc], "synthetic-mnist", limit=40)
    from connpack.exporters.module import to_module

    with torch.no_grad():
        want = to_module(desc)(data.normalise(x, SKEWED.mean, SKEWED.std)).softmax(1).numpy()
    assert np.allclose(probs[0], want, atol=1e-6)
    r = run_cli(runner, "compare", net28, VECTORS / "net_data.cpk", "--no-predict")
    assert r.exit_code != 0 or "sparsity" in r.stdout  # (different architectures are refused; no guess either way)


def test_bench_feeds_the_recorded_raw_range(net28):
    from connpack.bench import bench

    res = bench(net28, runs=2, batch=4, warmup=0)
    assert "uniform in [0, 1], the raw range of synthetic-mnist" in res.inputs
    assert all(r.max_abs_diff < 1e-5 and r.argmax_agree == 1.0 for r in res.rows)
