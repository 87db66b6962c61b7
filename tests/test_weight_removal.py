"""Weight removal (Ivan & Florian section 2.3, Eq. 6): unit-magnitude signs + an input scale = the same network."""

import math

import pytest
import torch

from connpack import data, models
from connpack.errors import SpecError
from connpack.layers import conn_layers
from connpack.trainers import make_config, network_spec, train
from connpack.trainers import methods
from connpack.trainers.connectivity import remove_weights


@pytest.mark.parametrize(
    "arch, dataset, method", [("lenet300", "synthetic-mnist", "prune"), ("conv2", "synthetic-cifar", "flip")]
)
def test_unit_weights_with_scaled_input_predict_the_same_classes(arch, dataset, method):
    cfg = make_config(method=method, arch=arch, dataset=dataset, init="signed_constant", width=0.25, device="cpu")
    spec = network_spec(cfg)
    model = models.build(spec)
    methods.get(method).configure(model, spec, cfg)
    with torch.no_grad():  # a trained-looking connectivity: some connections off / flipped
        for i, (_, layer) in enumerate(conn_layers(model)):
            layer.scores.copy_(torch.randn(layer.scores.shape, generator=torch.Generator().manual_seed(i)))
    unit, scale = remove_weights(model)

    layers = conn_layers(model)
    want = math.prod(math.sqrt(2.0 / (l.weight[0].numel())) for _, l in layers)  # prod sqrt(2 / n_{l-1})
    assert scale == pytest.approx(want, rel=1e-6)
    for (_, a), (_, b) in zip(layers, conn_layers(unit)):
        assert torch.equal(b.weight.abs(), torch.ones_like(b.weight))
        assert torch.equal(torch.sign(b.weight), torch.sign(a.weight))
    x, _ = data.load(dataset, "test", limit=200)
    model.eval(), unit.eval()
    with torch.no_grad():
        ref = model(x)
        got = unit(x * scale)
        raw = unit(x)
    assert torch.equal(ref.argmax(1), got.argmax(1))
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-6 * ref.abs().max().item())
    # argmax(a x) = argmax(x): even without the input scale the classes agree (scale > 0)
    assert torch.equal(raw.argmax(1), ref.argmax(1))


def test_refuses_what_is_not_positively_homogeneous():
    cfg = make_config(method="prune", dataset="synthetic-mnist", init="kaiming_normal", device="cpu")
    spec = network_spec(cfg)
    model = models.build(spec)
    methods.get("prune").configure(model, spec, cfg)
    with pytest.raises(SpecError, match="constant-magnitude"):
        remove_weights(model)
    desc, _ = train(
        make_config(
            method="edge-popup", arch="conv2", dataset="synthetic-cifar", width=0.125, limit=32, epochs=1, device="cpu"
        )
    )
    ep = models.build(desc.spec)
    with pytest.raises(SpecError, match="batch norm"):
        remove_weights(ep)
