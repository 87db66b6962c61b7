"""Iterative magnitude pruning: rewinding is exact, tickets, sparsity per iteration, resume, every architecture."""

import numpy as np
import pytest
import torch

from connpack import models
from connpack.errors import SpecError
from connpack.trainers import make_config, imp, masked
from connpack.trainers.asni import network_spec
from tests.test_asni import ARCHS

TINY = {"dataset": "synthetic-mnist", "device": "cpu", "limit": 120, "epochs": 1, "batch_size": 40, "iterations": 2}


def test_rewinding_restores_the_exact_initial_values():
    cfg = make_config(method="imp", **TINY)
    model = masked.attach(models.build(network_spec(cfg)))
    theta0 = masked.weights(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3)  # "training"
    new = {k: np.random.default_rng(1).random(w.shape) > 0.3 for k, w in theta0.items()}
    masked.set_masks(model, new)
    masked.set_weights(model, imp.reinit_weights(theta0, "rewind"))
    for k, w in masked.weights(model).items():
        assert np.array_equal(w, np.where(new[k], theta0[k], np.float32(0)))


@pytest.mark.parametrize("reinit", ["rewind", "finetune", "sigma-sign", "sign", "random"])
def test_imp_iterations_and_tickets(reinit):
    cfg = make_config(method="imp", reinit=reinit, **TINY)
    r = imp.train(cfg)
    kept = [sum(int(m.sum()) for m in h.values()) for h in r.masks]
    sizes = [m.size for m in r.masks[0].values()]
    assert kept[0] == sum(sizes) and kept[2] < kept[1] < kept[0]
    assert abs(kept[2] / sum(sizes) - 0.64) < 0.01  # 20% of the remaining, twice
    if reinit == "finetune":
        assert r.ticket is None
        return
    theta0 = masked.weights(masked.attach(models.build(network_spec(cfg))))
    fresh = masked.weights(masked.attach(models.build(imp.random_spec(network_spec(cfg)))))
    sd = r.ticket.state_dict()  # verifies the regenerated-weight hashes
    for k, code in r.ticket.tensors.items():
        m = r.masks[-1][k]
        want = {
            "rewind": theta0[k],
            "random": fresh[k],
            "sign": np.sign(theta0[k]),
            "sigma-sign": np.float32(theta0[k].std()) * np.sign(theta0[k]),
        }[reinit]
        assert np.allclose(sd[k], np.where(m, want, 0), atol=0, rtol=1e-6)
        assert code.kind == ("mask" if reinit in ("rewind", "random") else "ternary")
    if reinit == "random":  # a different draw from the one the mask was found with
        assert not any(np.array_equal(fresh[k], theta0[k]) for k in theta0)


def test_resume_replays_finished_iterations(tmp_path):
    cfg = make_config(method="imp", technique="l1-s", **TINY)
    ref = imp.train(cfg)

    def stop(event):
        if event.get("event") == "epoch_end" and event.get("phase") == "it1":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imp.train(cfg, checkpoint=tmp_path / "ck", progress=stop)
    r = imp.train(cfg, checkpoint=tmp_path / "ck", resume=True)
    for k in ref.masks[-1]:
        assert np.array_equal(ref.masks[-1][k], r.masks[-1][k])
    assert r.accuracy == ref.accuracy


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("technique", "nope", "technique"),
        ("fraction", 1.5, "fraction"),
        ("reinit", "nope", "reinit"),
        ("scope", "nope", "scope"),
        ("iterations", -1, "iterations"),
    ],
)
def test_bad_imp_parameters_are_spec_errors(field, value, needle):
    with pytest.raises(SpecError, match=needle):
        make_config(method="imp", **{field: value})


@pytest.mark.parametrize("arch,dataset,width", ARCHS)
def test_every_architecture_runs_one_tiny_imp_step(arch, dataset, width):
    cfg = make_config(
        method="imp",
        arch=arch,
        width=width,
        technique="hybrid",
        **{**TINY, "dataset": dataset, "iterations": 1, "limit": 40},
    )
    r = imp.train(cfg)
    assert len(r.masks) == 2 and len(r.accuracy) == 2
