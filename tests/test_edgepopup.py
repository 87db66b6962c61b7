"""edge-popup (Ramanujan et al.): exact top-k with STE through |s|, defaults, frozen BN, width, ResNet-18, packing."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import run_cli
from connpack import models, runfile
from connpack.layers import ConnLinear, conn_layers, kept_count, kth_largest, topk_mask
from connpack.packing import unpack
from connpack.reporting import report
from connpack.trainers import make_config, network_spec, train
from connpack.trainers import methods

SMALL = dict(method="edge-popup", epochs=1, device="cpu", limit=64)


@pytest.mark.parametrize("n", [10, 1000, 150_000])
@pytest.mark.parametrize("k", [0.01, 0.3, 0.5, 1.0])
def test_topk_mask_is_the_sort_answer_exactly(n, k):
    a = torch.rand(n, generator=torch.Generator().manual_seed(n))
    keep = kept_count(n, k)
    m = topk_mask(a, k)
    assert int(m.sum()) == keep
    ref = torch.zeros(n, dtype=torch.bool)
    ref[a.argsort(descending=True, stable=True)[:keep]] = True
    assert torch.equal(m, ref)


def test_ties_at_the_threshold_are_broken_by_position_and_the_count_is_exact():
    a = torch.tensor([0.5, 0.2, 0.5, 0.9, 0.5, 0.1, 0.5])
    m = topk_mask(a, 3 / 7)  # keep 3: 0.9 and the first two 0.5s
    assert m.tolist() == [True, False, True, True, False, False, False]
    big = torch.zeros(200_000)  # all tied, on the kthvalue path
    big[::7] = 1.0
    m = topk_mask(big, 0.5)
    assert int(m.sum()) == 100_000 and bool(m[::7].all())
    assert kth_largest(torch.arange(200_000.0), 10) == 199_990.0


def test_gradient_goes_straight_through_the_top_k_and_through_abs():
    layer = ConnLinear(4, 1)
    s = torch.tensor([[0.3, -0.9, 0.1, -0.2]])
    layer.configure("topk", torch.ones(1, 4), s, k=0.5)
    assert layer.connectivity().tolist() == [[True, True, False, False]]
    layer(torch.ones(1, 4)).sum().backward()
    # d/ds [sum_i w_i h(|s_i|)] with h straight-through: w_i * sign(s_i), also for the pruned edges
    assert layer.scores.grad.tolist() == [[1.0, -1.0, 1.0, -1.0]]


def test_defaults_are_the_papers():
    cfg = make_config(method="edge-popup")
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.weight_decay, cfg.schedule) == ("sgd", 0.1, 128, 1e-4, "cosine")
    adam = make_config(method="edge-popup", optimizer="adam")
    assert adam.schedule == "none" and adam.lr > 0  # "with Adam we do not decay the learning rate"


def test_lenet_keeps_exactly_k_per_layer_and_cosine_decays(tmp_path):
    desc, metrics = train(make_config(dataset="synthetic-mnist", k=0.3, **{**SMALL, "epochs": 2}))
    for name, code in desc.tensors.items():
        assert code.kind == "mask" and int(code.bits.sum()) == kept_count(code.size, 0.3), name
    assert desc.spec.hparams["k"] == 0.3 and desc.spec.method == "edge-popup"
    assert [m["lr"] for m in metrics] == pytest.approx([0.1, 0.1 * (1 + math.cos(math.pi / 2)) / 2])
    assert metrics[0]["pruned"] == pytest.approx(0.7, abs=1e-3)


@pytest.mark.parametrize("arch", ["conv2", "conv8", "resnet18"])
def test_conv_models_train_with_frozen_batch_norm(arch):
    width = 0.0625 if arch == "resnet18" else 0.125
    desc, _ = train(
        make_config(
            arch=arch, dataset="synthetic-cifar", width=width, init="signed_constant_scaled", **{**SMALL, "limit": 32}
        )
    )
    assert desc.spec.model.batchnorm == "frozen"
    assert desc.spec.init.scale == pytest.approx(math.sqrt(2))  # sqrt(1/k), k = 0.5
    model = models.build(desc.spec)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(not bn.affine for bn in bns)  # no BN parameters at all
    methods.get("edge-popup").configure(model, desc.spec, make_config(method="edge-popup", k=0.5))
    assert all(n.endswith("scores") for n, _ in model.named_parameters())
    assert all(k.endswith(("running_mean", "running_var")) for k in desc.dense)
    assert all(c.kind == "mask" for c in desc.tensors.values())


def test_width_multiplier_scales_the_hidden_layers():
    shapes = {}
    for width in (1.0, 2.0):
        spec = network_spec(make_config(method="edge-popup", arch="conv4", dataset="synthetic-cifar", width=width))
        shapes[width] = [tuple(l.weight.shape) for _, l in conn_layers(models.build(spec, generate=False))]
    assert shapes[2.0][0] == (128, 3, 3, 3) and shapes[1.0][0] == (64, 3, 3, 3)
    assert shapes[2.0][-1][0] == shapes[1.0][-1][0] == 10  # the classes stay


def test_resnet18_is_the_cifar_resnet():
    spec = network_spec(make_config(method="edge-popup", arch="resnet18", dataset="synthetic-cifar"))
    model = models.build(spec, generate=False)
    n = sum(l.weight.numel() for _, l in conn_layers(model))
    # the standard CIFAR ResNet-18 has 11,173,962 parameters = these weights + 9,600 BN affine + 10 fc biases
    assert n == 11_173_962 - 9_600 - 10
    assert len(conn_layers(model)) == 21  # 1 stem + 16 block convs + 3 shortcuts + fc
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_adam_option_and_unscaled_inits_train():
    for init in ("kaiming_normal", "kaiming_normal_scaled", "signed_constant"):
        desc, m = train(make_config(dataset="synthetic-mnist", optimizer="adam", init=init, **SMALL))
        assert m[0]["lr"] == desc.spec.hparams["lr"] or desc.spec.hparams["lr"] is None


def test_edge_popup_model_packs_and_reports_k(runner, tmp_path):
    pt, cpk = tmp_path / "ep.pt", tmp_path / "ep.cpk"
    res = run_cli(
        runner,
        "train",
        "--method",
        "edge-popup",
        "--k",
        "0.3",
        "--dataset",
        "synthetic-mnist",
        "--limit",
        "64",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "-q",
        "-o",
        pt,
    )
    assert res.exit_code == 0, res.output
    assert run_cli(runner, "pack", pt).exit_code == 0 and cpk.exists()
    desc, _ = runfile.load(pt)
    back = unpack(cpk)
    for name, code in desc.tensors.items():
        assert np.array_equal(back.tensors[name].bits, code.bits)
    rep = report(cpk)
    fractions = [r.fraction for r in rep.rows if r.kind == "mask"]
    assert len(fractions) == 3 and all(f == pytest.approx(0.3, abs=1e-3) for f in fractions)  # k is the ones fraction
    assert back.spec.hparams == {"k": 0.3} and rep.k == 0.3  # k travels in the .cpk
    res = run_cli(runner, "report", cpk)
    flat = " ".join(res.output.split())  # rich wraps long lines (the tmp path's length varies)
    assert res.exit_code == 0 and "bits per weight" in flat and "k = 0.3 kept" in flat


def test_warm_started_top_k_equals_the_fresh_one_as_scores_drift():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(60_000, generator=gen)
    state: dict = {}
    for step in range(12):
        scale = 1e-4 if step < 6 else 0.5  # small steps, then jumps that leave the band
        a = a + scale * torch.randn(60_000, generator=gen)
        if step == 9:
            a[:1000] = a[5000]  # a big tie
        assert torch.equal(topk_mask(a, 0.37, state), topk_mask(a, 0.37)), step
    assert "thr" in state
