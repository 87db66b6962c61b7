import pytest
import torch

from connpack import models
from connpack.errors import SpecError
from connpack.layers import conn_layers
from connpack.models.registry import register
from connpack.specs import ModelSpec, NetworkSpec


def test_lenet300_shapes_and_no_bias():
    m = models.build(NetworkSpec(model=ModelSpec("lenet300")))
    shapes = [tuple(layer.weight.shape) for _, layer in conn_layers(m)]
    assert shapes == [(300, 784), (100, 300), (10, 100)]
    assert all(layer.bias is None for _, layer in conn_layers(m))
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("arch,n_conv", [("conv2", 2), ("conv4", 4), ("conv6", 6), ("conv8", 8)])
def test_convnets_on_cifar_shape(arch, n_conv):
    spec = NetworkSpec(model=ModelSpec(arch, in_shape=(3, 32, 32), width=0.25))
    m = models.build(spec)
    convs = [layer for _, layer in conn_layers(m) if layer.weight.dim() == 4]
    assert len(convs) == n_conv and convs[0].weight.shape[0] == 16  # 64 * 0.25
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_same_spec_same_weights_and_seed_changes_them():
    a = models.build(NetworkSpec(model=ModelSpec("lenet300")))
    b = models.build(NetworkSpec(model=ModelSpec("lenet300")))
    from connpack.specs import RngSpec

    c = models.build(NetworkSpec(model=ModelSpec("lenet300"), rng=RngSpec(seed=1)))
    assert all(torch.equal(x.weight, y.weight) for (_, x), (_, y) in zip(conn_layers(a), conn_layers(b)))
    assert not torch.equal(conn_layers(a)[0][1].weight, conn_layers(c)[0][1].weight)


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(SpecError, match="already registered"):
        register("lenet300")(lambda spec: None)
    with pytest.raises(SpecError, match="unknown architecture 'nope'"):
        models.get("nope")


def test_lenet5_is_the_reinit_papers_60k_lenet():
    m = models.build(NetworkSpec(model=ModelSpec("lenet5", bias=True)))
    assert sum(p.numel() for p in m.parameters()) == 60074  # Paganini & Forde Table 1: "60" thousand
    assert [tuple(layer.weight.shape) for _, layer in conn_layers(m)][:2] == [(6, 1, 3, 3), (16, 6, 3, 3)]
