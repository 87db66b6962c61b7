"""ASNI: the sigmoid schedule, the cosine rate, the centroids, the variants, packing, resume, every architecture."""

import math

import numpy as np
import pytest

from connpack import models
from connpack.errors import SpecError
from connpack.packing import pack, unpack
from connpack.trainers import make_config, asni

TINY = {"dataset": "synthetic-mnist", "device": "cpu", "limit": 120, "epochs": 2, "batch_size": 40}


def test_sigmoid_schedule_is_monotone_and_reaches_alpha_at_the_end():
    for alpha, beta, gamma, E in [(98, 0.5, 5, 50), (97, 0.5, 16, 160), (99.2, 0.5, 2, 20)]:
        p = [asni.sparsity_schedule(e, E, alpha, beta, gamma) for e in range(1, E + 1)]
        assert all(b > a for a, b in zip(p, p[1:]))
        assert p[-1] < alpha / 100 and p[-1] >= 0.99 * alpha / 100
        assert p[0] < 0.01 * alpha
    assert asni.sparsity_schedule(50, 50, 98, 0.5, 5) == pytest.approx(0.98 / (1 + math.exp(-5)))
    assert asni.sparsity_schedule(25, 50, 98, 0.5, 5) == pytest.approx(0.49)  # half of alpha at e = beta*E


def test_cosine_rate_decreases_and_stays_positive():
    f = [asni.lr_factor(e, 160, 0.06) for e in range(0, 161)]
    assert f[0] == 1.0 and all(b < a for a, b in zip(f, f[1:])) and 0 < f[-1] < 0.01


def test_centroids_are_means_of_kept_positive_and_negative_weights():
    w = np.array([[0.5, -0.2, 0.1], [-0.6, 0.3, -0.05]], dtype=np.float32)
    m = np.array([[1, 1, 0], [1, 1, 0]], dtype=bool)
    c_neg, c_pos = asni.centroids(w, m)
    assert c_pos == pytest.approx(0.4) and c_neg == pytest.approx(-0.4)


@pytest.mark.parametrize(
    "field,value",
    [("alpha", 0.0), ("alpha", 100.0), ("alpha", 150.0), ("beta", -0.1), ("beta", 1.5), ("gamma", 0.0), ("delta", 0.0)],
)
def test_bad_sparsity_parameters_are_spec_errors(field, value):
    with pytest.raises(SpecError, match=field):
        make_config(method="asni", **{field: value})


def test_paper_defaults_from_tables_1_and_2():
    cfg = make_config(method="asni")
    assert (cfg.hp.alpha, cfg.hp.gamma, cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.lr) == (
        98.0,
        5.0,
        50,
        60,
        "adam",
        1.2e-3,
    )
    cfg = make_config(method="asni", arch="vgg16", dataset="cifar10")
    assert (cfg.hp.alpha, cfg.hp.gamma, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.schedule) == (
        99.0,
        16.0,
        "sgd",
        0.05,
        5e-4,
        "cosine",
    )


@pytest.fixture(scope="module")
def lenet_run():
    return asni.train(make_config(method="asni", alpha=90, gamma=0.5, **TINY))


def test_variants_masks_and_ternary_pack(lenet_run, tmp_path):
    r = lenet_run
    assert set(r.accuracy) == {"D", "A", "C", "S"}
    n = sum(c.size for c in r.trained.tensors.values())
    assert r.nonzeros == n - round(asni.sparsity_schedule(2, 2, 90, 0.5, 0.5) * n)
    for k, code in r.trained.tensors.items():
        assert code.kind == "values" and np.array_equal(r.retrained.tensors[k].bits, code.bits)
        t = r.amenable.tensors[k]
        assert t.kind == "ternary" and np.array_equal(t.bits, code.bits)
        assert t.centroids == pytest.approx(asni.centroids(code.materialize(None), code.bits))
    pack(r.amenable, tmp_path / "init.cpk")
    back = unpack(tmp_path / "init.cpk")
    for k, t in r.amenable.tensors.items():
        got = back.tensors[k].materialize(None)
        assert np.array_equal(got, t.materialize(None))
        assert set(np.unique(got)) <= {np.float32(0), np.float32(t.centroids[0]), np.float32(t.centroids[1])}
    sizes = [pack(r.trained, tmp_path / f"a{v}.cpk", values=v) for v in ("float32", "float16")]
    assert (tmp_path / "init.cpk").stat().st_size < sizes[1] < sizes[0]


def test_resume_after_interruption_gives_the_same_network(tmp_path, lenet_run):
    cfg = make_config(method="asni", alpha=90, gamma=0.5, **TINY)

    def stop(event):
        if event.get("event") == "epoch_end" and event.get("phase") == "A" and event.get("epoch") == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asni.train(cfg, checkpoint=tmp_path / "ck", progress=stop)
    assert (tmp_path / "ck.A").exists()
    r = asni.train(cfg, checkpoint=tmp_path / "ck", resume=True)
    for k, code in lenet_run.trained.tensors.items():
        assert np.array_equal(r.trained.tensors[k].bits, code.bits)
        assert np.allclose(r.trained.tensors[k].values, code.values, atol=1e-6)
    # the phase checkpoints stay until the caller has written its outputs (the CLI then removes them)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in r.checkpoints)


ARCHS = [
    ("lenet300", "synthetic-mnist", 1.0),
    ("conv2", "synthetic-mnist", 0.125),
    ("conv4", "synthetic-mnist", 0.125),
    ("conv6", "synthetic-mnist", 0.125),
    ("vgg11", "synthetic-cifar", 0.0625),
    ("vgg13", "synthetic-cifar", 0.0625),
    ("vgg16", "synthetic-cifar", 0.0625),
] + ([("resnet18", "synthetic-cifar", 0.0625)] if "resnet18" in models.names() else [])


@pytest.mark.parametrize("arch,dataset,width", ARCHS)
def test_every_architecture_runs_one_tiny_asni_step(arch, dataset, width):
    cfg = make_config(method="asni", arch=arch, width=width, **{**TINY, "dataset": dataset, "epochs": 1, "limit": 40})
    r = asni.train(cfg, variants=("A",))
    assert 0 < r.sparsity < 1 and set(r.accuracy) == {"A"}
    assert all(t.kind == "ternary" for t in r.amenable.tensors.values())
