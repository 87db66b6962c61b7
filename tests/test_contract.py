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
    m.fc1, m.fc2, m.fc3 = nn.Linear(784, 300, bias=False), nn.Linear(300, 100, bias=False), nn.Linear(100, 10, bias=False)
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


@pytest.mark.parametrize("args,record", [
    (["--dataset", "fashion-mnist"], data.contract("fashion-mnist")),
    (["--dataset", "mnist", "--mean", "0.5", "--std", "0.5"], data.contract("mnist", (0.5,), (0.5,))),
    (["--dataset", "scans", "--mean", "0.25", "--std", "2"], DataContract("scans", (0.25,), (2.0,))),
])
def test_imported_model_with_dataset_options(runner, pruned_pt, tmp_path, args, record):
    r = run_cli(runner, "pack", pruned_pt, "-o", tmp_path / "a.cpk", *args)
    assert r.exit_code == 0, r.stderr
    assert unpack(tmp_path / "a.cpk").data == record
    r = run_cli(runner, "report", tmp_path / "a.cpk")
    assert f"data: {record.dataset} — input 1×28×28" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--dataset", "scans", "--mean", "0.5"], "give its mean and std"),
    (["--mean", "0.5", "--std", "0.5"], "--mean/--std need --dataset NAME"),
    (["--dataset", "cifar10"], "the network takes 1 input channel"),
    (["--dataset", "mnist", "--std", "0"], "std values must be finite numbers > 0"),
    (["--dataset", "mnist", "--mean", "a,b"], "--mean must be comma-separated numbers"),
    (["--dataset", "mnist", "--mean", "nan"], "--mean must be finite numbers"),
    (["--dataset", "bad\x07name", "--mean", "0", "--std", "1"], "printable text"),
])
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
