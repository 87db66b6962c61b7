"""Importing sparse PyTorch models: torch.nn.utils.prune checkpoints and zero-filled state_dicts."""

import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision
from torch import nn
from torch.nn.utils import prune

from connpack import api, importers, models
from connpack.errors import InputFileError, SpecError
from connpack.layers import conn_layers
from connpack.specs import ModelSpec, NetworkSpec
from tests.test_cli import _one_line_error
from tests.conftest import run_cli

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module")
def pruned():
    """A torchvision ResNet-18 (10 classes) pruned to 90% by global L1 magnitude, with its reference outputs."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    layers = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.9)
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        y = model(x)
    return model, x, y


def removed(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict after prune.remove: plain tensors with zeros."""
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    return plain.state_dict()


def test_torch_pruned_model_packs_and_unpacks_to_the_same_outputs(pruned, tmp_path):
    model, x, y = pruned
    assert any(k.endswith("weight_orig") for k in model.state_dict())
    desc = importers.describe(model, arch="torchvision:resnet18")
    assert desc.spec.method == "import" and desc.spec.hparams["source"] == "torch.nn.utils.prune"
    assert desc.spec.model == ModelSpec("torchvision:resnet18", in_shape=(3, 224, 224), num_classes=10)
    assert list(desc.tensors)[0] == "conv1.weight" and list(desc.tensors)[-1] == "fc.weight"
    assert {c.kind for c in desc.tensors.values()} == {"values"}
    kept = sum(int(c.bits.sum()) for c in desc.tensors.values())
    total = sum(c.size for c in desc.tensors.values())
    assert kept == total - round(0.9 * total)
    assert np.array_equal(desc.tensors["conv1.weight"].bits, model.conv1.weight_mask.numpy() != 0)
    assert "bn1.running_var" in desc.dense and "fc.bias" in desc.dense
    size = api.pack(model, tmp_path / "r18.cpk", arch="torchvision:resnet18", codec="ans", in_shape=SHAPE)
    assert size == (tmp_path / "r18.cpk").stat().st_size < 4 * kept + total / 8 + 100_000
    spec = api.load_description(tmp_path / "r18.cpk").spec  # the architecture survives the .cpk header
    assert spec.model == ModelSpec("torchvision:resnet18", in_shape=SHAPE, num_classes=10) and spec.method == "import"
    back = api.load(tmp_path / "r18.cpk")
    with torch.no_grad():
        assert torch.equal(back(x), y)


@pytest.mark.parametrize("values,tol", [("float16", 8 * 2.0**-11), ("bfloat16", 8 * 2.0**-8)])
def test_half_precision_values_are_within_the_stated_tolerance(pruned, tmp_path, values, tol):
    model, x, y = pruned
    kept = sum(int(m.weight_mask.sum()) for m in model.modules() if hasattr(m, "weight_mask"))
    half = api.pack(model, tmp_path / "b.cpk", arch="torchvision:resnet18", codec="ans", values=values)
    assert half < 2 * kept + 1_000_000  # 2 bytes per kept value + masks (~0.4 bit/weight) + batch norm
    with torch.no_grad():
        got = api.load(tmp_path / "b.cpk")(x)
    err = float((got - y).abs().max())
    assert 0 < err <= tol * float(y.abs().max())


def test_zero_filled_state_dict_checkpoint_and_inferred_architecture(pruned, tmp_path):
    model, x, y = pruned
    sd = removed(model)
    assert not importers.is_torch_pruned(sd)
    checkpoint = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}  # DataParallel style
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    desc = api.describe(tmp_path / "ckpt.pt")  # no arch: matched by tensor names and shapes
    assert desc.spec.model.arch == "torchvision:resnet18" and desc.spec.hparams["source"] == "state_dict"
    ref = importers.describe(model, arch="torchvision:resnet18")
    for key, code in desc.tensors.items():
        assert np.array_equal(code.bits, ref.tensors[key].bits), key
    api.pack(tmp_path / "ckpt.pt", tmp_path / "c.cpk", codec="ans")
    with torch.no_grad():
        assert torch.equal(api.load(tmp_path / "c.cpk")(x), y)


def test_connpack_architecture_by_alias_with_inferred_input():
    spec = NetworkSpec(model=ModelSpec("conv6", in_shape=(3, 32, 32), width=0.25, bias=True, batchnorm="affine"))
    net = models.build(spec).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for _, layer in conn_layers(net):
            layer.weight.mul_((torch.rand(layer.weight.shape) < 0.5).float())
    desc = importers.describe(net.state_dict(), arch="connpack:conv6")
    assert desc.spec.model == ModelSpec("conv6", in_shape=(3, 32, 32), width=0.25, bias=True, batchnorm="affine")
    assert all(0.4 < code.density() < 0.6 for code in desc.tensors.values())


def test_mismatch_names_the_first_key_and_shape(pruned):
    model, _, _ = pruned
    sd = removed(model)
    with pytest.raises(InputFileError) as e:
        importers.describe(sd, arch="torchvision:resnet50")
    assert "'layer1.0.conv1.weight' has shape (64, 64, 3, 3), architecture expects (64, 64, 1, 1)" in str(e.value)
    del sd["layer2.0.bn1.running_mean"]
    with pytest.raises(
        InputFileError, match=r"'layer2.0.bn1.running_mean' is missing \(architecture expects shape \(128,\)\)"
    ):
        importers.describe(sd, arch="torchvision:resnet18")
    with pytest.raises(SpecError, match="unknown architecture 'torchvision:nope'"):
        importers.describe(sd, arch="torchvision:nope")
    with pytest.raises(InputFileError, match="not a connpack model file nor a state_dict"):
        importers.describe({"epoch": 3, "lr": 0.1})


def test_cli_packs_a_pruned_checkpoint_and_exports_onnx_that_onnxruntime_runs(runner, pruned, tmp_path):
    model, x, y = pruned
    torch.save(model.state_dict(), tmp_path / "pruned.pt")
    r = run_cli(
        runner,
        "pack",
        tmp_path / "pruned.pt",
        "--arch",
        "torchvision:resnet18",
        "--in-shape",
        "3,64,64",
        "--codec",
        "ans",
    )
    assert r.exit_code == 0, r.stderr
    r = run_cli(runner, "unpack", tmp_path / "pruned.cpk", "--onnx", tmp_path / "pruned.onnx")
    assert r.exit_code == 0, r.stderr
    sess = ort.InferenceSession(str(tmp_path / "pruned.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - y.numpy()).max() <= 1e-4


def test_cli_mismatch_is_a_one_line_error(runner, pruned, tmp_path):
    model, _, _ = pruned
    torch.save(removed(model), tmp_path / "plain.pt")
    r = run_cli(runner, "pack", tmp_path / "plain.pt", "--arch", "torchvision:resnet50", "-o", tmp_path / "x.cpk")
    _one_line_error(r, 3)
    assert "does not match architecture 'torchvision:resnet50'" in r.stderr
    assert "'layer1.0.conv1.weight' has shape (64, 64, 3, 3), architecture expects (64, 64, 1, 1)" in r.stderr
    _one_line_error(run_cli(runner, "pack", tmp_path / "plain.pt", "--in-shape", "3,x", "-o", tmp_path / "x.cpk"), 2)
    assert not (tmp_path / "x.cpk").exists()
