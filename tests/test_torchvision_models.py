"""torchvision architectures as connpack models: same tensors as torchvision, same function, usable by
the trainers, pack and unpack."""

import copy
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

from connpack import api, models
from connpack.errors import SpecError
from connpack.layers import ConnConv2d, conn_layers
from connpack.models import tv
from connpack.specs import ModelSpec, NetworkSpec
from connpack.trainers import make_config, train


def skeleton(arch: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return models.build(NetworkSpec(model=ModelSpec(arch, **kw)), generate=False)


@pytest.mark.parametrize("arch", tv.ARCHS)
def test_same_tensors_as_torchvision_and_every_layer_converted(arch):
    ours = skeleton(f"torchvision:{arch}", in_shape=(3, 224, 224), num_classes=10)
    with torch.device("meta"):
        ref = getattr(torchvision.models, arch)(weights=None, num_classes=10)
    a, b = ours.state_dict(), ref.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    n_ref = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in ref.modules())
    assert len(conn_layers(ours)) == n_ref
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in ours.modules())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_conversion_keeps_the_function(arch):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, arch)(weights=None, num_classes=10).eval()
    ours = tv.convert(copy.deepcopy(ref)).eval()
    convs = [m for _, m in conn_layers(ours) if isinstance(m, ConnConv2d)]
    if arch == "mobilenet_v2":  # depthwise convolutions keep their groups
        assert any(m.groups > 1 for m in convs)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_input_channels_width_and_aliases():
    m = models.build(NetworkSpec(model=ModelSpec("torchvision:resnet18", in_shape=(1, 28, 28), num_classes=10)))
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    narrow = skeleton("torchvision:mobilenet_v2", in_shape=(3, 32, 32), width=0.5)
    assert conn_layers(narrow)[0][1].weight.shape[0] == 16  # 32 * 0.5
    with pytest.raises(SpecError, match="no width multiplier"):
        skeleton("torchvision:resnet18", width=0.5)
    assert models.get("connpack:conv6") is models.get("conv6")
    with pytest.raises(SpecError, match="unknown architecture 'connpack:nope'"):
        models.get("connpack:nope")


def test_registering_does_not_import_torchvision():
    code = "import sys, connpack.models; assert 'torchvision' not in sys.modules; print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "ok"


@pytest.mark.parametrize(
    "method,kw,kind", [("edge-popup", {}, "mask"), ("imp", {"iterations": 1, "fraction": 0.5}, "values")]
)
def test_trainers_pack_and_unpack_a_torchvision_model(tmp_path, method, kw, kind):
    cfg = make_config(
        method=method,
        arch="torchvision:mobilenet_v2",
        width=0.25,
        dataset="synthetic-mnist",
        epochs=1,
        limit=32,
        batch_size=32,
        device="cpu",
        **kw,
    )
    desc, metrics = train(cfg)
    assert desc.spec.model.arch == "torchvision:mobilenet_v2" and metrics
    assert {c.kind for c in desc.tensors.values()} == {kind}
    assert len(desc.tensors) == len(conn_layers(skeleton("torchvision:mobilenet_v2", width=0.25)))
    api.pack(desc, tmp_path / "m.cpk", codec="ans")
    model = api.load(tmp_path / "m.cpk")
    reference = api.load_description(tmp_path / "m.cpk")
    x = torch.randn(3, 1, 28, 28)
    from connpack.exporters.module import to_module

    with torch.no_grad():
        assert torch.equal(model(x), to_module(desc)(x))
    assert reference.spec == desc.spec.__class__.from_dict(desc.spec.compact_dict())
