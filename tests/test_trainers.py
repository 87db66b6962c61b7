"""Ivan & Florian's trainers on every architecture, inits and their CLI names, p_positive, bad input."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import run_cli
from connpack import models, runfile
from connpack.errors import SpecError
from connpack.layers import ConnLinear, conn_layers
from connpack.models.registry import _REGISTRY, register
from connpack.trainers import make_config, network_spec, train
from connpack.trainers.gated import PAPER_LR

SMALL = dict(epochs=1, device="cpu", limit=50)
ARCHS = {
    "lenet300": ("synthetic-mnist", 1.0),
    "conv2": ("synthetic-cifar", 0.125),
    "conv4": ("synthetic-cifar", 0.125),
    "conv6": ("synthetic-cifar", 0.125),
}


ALL = [("baseline", "free"), ("prune", "free"), ("prune", "minimal"), ("flip", "free"), ("flip", "minimal")]
GRID = [("lenet300", m, v) for m, v in ALL] + [
    (a, m, v) for a in ("conv2", "conv4", "conv6") for m, v in (("prune", "free"), ("flip", "minimal"))
]


@pytest.mark.parametrize("arch, method, variant", GRID)
def test_every_method_trains_every_architecture_with_the_paper_defaults(arch, method, variant):
    dataset, width = ARCHS[arch]
    cfg = make_config(method=method, variant=variant, arch=arch, dataset=dataset, width=width, **SMALL)
    assert (cfg.optimizer, cfg.batch_size, cfg.schedule, cfg.weight_decay) == ("adam", 25, "none", 0.0)  # Table A.2
    assert cfg.lr == PAPER_LR[arch][method]
    desc, metrics = train(cfg)
    kinds = {c.kind for c in desc.tensors.values()}
    assert kinds == {"dense" if method == "baseline" else "mask" if method == "prune" else "flip"}
    assert desc.spec.model.batchnorm == "none" and not desc.dense  # no BN, no biases (I&F section 2.2)
    key = {"prune": "pruned", "flip": "flipped"}.get(method)
    assert len(metrics) == 1 and (key is None or 0.0 <= metrics[0][key] <= 1.0)


@pytest.mark.parametrize(
    "name, dist, scale",
    [
        ("signed_constant", "signed_constant", 1.0),
        ("he_constant", "signed_constant", 1.0),
        ("kaiming_normal", "kaiming_normal", 1.0),
        ("he", "kaiming_normal", 1.0),
        ("xavier_normal", "xavier_normal", 1.0),
        ("glorot", "xavier_normal", 1.0),
        ("kaiming_uniform", "kaiming_uniform", 1.0),
        ("kaiming_normal_scaled", "kaiming_normal", math.sqrt(1 / 0.3)),
        ("signed_constant_scaled", "signed_constant", math.sqrt(1 / 0.3)),
    ],
)
def test_init_names_map_to_the_papers_distributions(name, dist, scale):
    cfg = make_config(method="edge-popup", init=name, k=0.3, dataset="synthetic-mnist", device="cpu")
    init = network_spec(cfg).init
    assert init.dist == dist and init.scale == pytest.approx(scale)


def test_generated_weights_have_the_papers_scale():
    w = {}
    for init in ("signed_constant", "kaiming_normal", "xavier_normal"):
        spec = network_spec(make_config(init=init, dataset="synthetic-mnist"))
        w[init] = models.generate_weights(spec, {"a": (300, 784)})["a"]
    assert np.allclose(np.abs(w["signed_constant"]), math.sqrt(2 / 784))  # He constant: sqrt(2 / n_{l-1})
    assert w["kaiming_normal"].std() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert w["xavier_normal"].std() == pytest.approx(math.sqrt(2 / (784 + 300)), rel=0.02)


@pytest.mark.parametrize("p", [0.01, 0.25, 1.0])
def test_p_positive_sets_the_sign_imbalance_and_trains(p):
    cfg = make_config(method="flip", dataset="synthetic-mnist", p_positive=p, **SMALL)
    desc, _ = train(cfg)
    gen = desc.generated()
    positive = sum(int((g > 0).sum()) for g in gen.values()) / sum(g.size for g in gen.values())
    assert positive == pytest.approx(p, abs=0.01)
    assert desc.spec.init.p_positive == p


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(init="he_uniformish"), "unknown init"),
        (dict(init="kaiming_normal_scaled", method="prune"), "_scaled"),
        (dict(k=0.0), "k"),
        (dict(k=1.5), "k"),
        (dict(p_positive=-0.1), "p_positive"),
        (dict(p_positive=1.01), "p_positive"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(schedule="step"), "schedule"),
    ],
)
def test_bad_options_are_refused_by_the_config(kwargs, message):
    with pytest.raises(SpecError, match=message):
        make_config(**kwargs)


@pytest.fixture
def cifar_only_arch():
    """A fake architecture that only fits 3x32x32 inputs."""
    name = "test-cifar-only"

    @register(name)
    def build(spec):
        return nn.Sequential(nn.Flatten(), ConnLinear(3 * 32 * 32, spec.num_classes))

    yield name
    del _REGISTRY[name]


def test_an_architecture_that_does_not_fit_the_data_fails_before_training(runner, tmp_path, cifar_only_arch):
    res = run_cli(
        runner,
        "train",
        "--arch",
        cifar_only_arch,
        "--dataset",
        "synthetic-mnist",
        "--device",
        "cpu",
        "-o",
        tmp_path / "m.pt",
    )
    assert res.exit_code != 0
    assert "does not fit input (1, 28, 28)" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.pt.ckpt").exists()
    # and it trains where it fits
    desc, _ = train(make_config(method="prune", arch=cifar_only_arch, dataset="synthetic-cifar", **SMALL))
    assert list(desc.tensors) == ["1.weight"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--init", "glorot_uniform"], "unknown init"),
        (["--method", "edge-popup", "--k", "0"], "(0, 1]"),
        (["--p-positive", "2"], "p_positive"),
    ],
)
def test_cli_bad_input_is_one_line(runner, tmp_path, args, message):
    res = run_cli(runner, "train", "--dataset", "synthetic-mnist", "-o", tmp_path / "m.pt", *args)
    assert res.exit_code != 0 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_cli_trains_writes_metrics_and_a_larger_epochs_extends_the_finished_run(runner, tmp_path):
    out = tmp_path / "m.pt"
    args = [
        "train",
        "--method",
        "prune",
        "--variant",
        "minimal",
        "--init",
        "he",
        "--dataset",
        "synthetic-mnist",
        "--limit",
        "50",
        "--device",
        "cpu",
        "-o",
        out,
        "-q",
    ]
    res = run_cli(runner, *args, "--epochs", "2")
    assert res.exit_code == 0, res.output
    desc, metrics = runfile.load(out)
    assert [m["epoch"] for m in metrics] == [1, 2] and desc.spec.init.dist == "kaiming_normal"
    assert out.with_suffix(".metrics.json").exists() and (tmp_path / "m.pt.ckpt").exists()

    fewer = run_cli(runner, *args, "--epochs", "1", "--resume")
    assert fewer.exit_code == 3 and "more than --epochs 1" in fewer.output
    other = run_cli(runner, *args, "--epochs", "3", "--resume", "--seed", "1")
    assert other.exit_code == 3 and "other settings (seed)" in other.output
    assert len(other.output.strip().splitlines()) == 1
    res = run_cli(runner, *args, "--epochs", "3", "--resume")
    assert res.exit_code == 0, res.output
    extended, metrics = runfile.load(out)
    whole, whole_metrics = train(
        make_config(
            method="prune", variant="minimal", init="he", dataset="synthetic-mnist", limit=50, device="cpu", epochs=3
        )
    )
    assert [m["train_loss"] for m in metrics] == [m["train_loss"] for m in whole_metrics]
    for name, code in whole.tensors.items():
        assert np.array_equal(extended.tensors[name].bits, code.bits), name


def test_seeding_is_deterministic_and_seed_dependent():
    a, _ = train(make_config(method="prune", dataset="synthetic-mnist", **SMALL))
    b, _ = train(make_config(method="prune", dataset="synthetic-mnist", **SMALL))
    c, _ = train(make_config(method="prune", dataset="synthetic-mnist", seed=1, **SMALL))
    for name in a.tensors:
        assert np.array_equal(a.tensors[name].bits, b.tensors[name].bits)
    assert a.weight_hashes != c.weight_hashes


def test_baseline_trains_the_weights_and_connectivity_methods_do_not():
    spec = network_spec(make_config(method="prune", dataset="synthetic-mnist"))
    desc, _ = train(make_config(method="prune", dataset="synthetic-mnist", **SMALL))
    gen = models.generate_weights(spec, {k: c.shape for k, c in desc.tensors.items()})
    sd = desc.state_dict()
    for name, g in gen.items():  # effective weight = generated weight or 0, never another value
        w = sd[name]
        assert np.all((w == g) | (w == 0))
    model = models.build(spec)
    assert all(isinstance(layer.weight, torch.Tensor) for _, layer in conn_layers(model))
