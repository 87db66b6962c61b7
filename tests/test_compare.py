"""Mask comparison: distances, effective sparsity (appendix B), architecture check, the compare command."""

import re

import numpy as np
import pytest

from connpack import compare, runfile
from connpack.errors import SpecError
from connpack.packing import pack
from connpack.trainers import make_config, asni, imp
from tests.conftest import run_cli

TINY = {"dataset": "synthetic-mnist", "device": "cpu", "limit": 120, "epochs": 1, "batch_size": 40}


def test_distances():
    rng = np.random.default_rng(0)
    a, b = rng.random((20, 30)) > 0.5, rng.random((20, 30)) > 0.3
    assert compare.jaccard_distance(a, a) == 0 and compare.hamming_distance(a, a) == 0
    assert 0 < compare.jaccard_distance(a, b) < 1 and 0 < compare.hamming_distance(a, b) < 1
    assert compare.jaccard_distance(a, ~a) == 1 and compare.hamming_distance(a, ~a) == 1
    inter, union = (a & b).sum(), (a | b).sum()
    assert compare.jaccard_distance(a, b) == pytest.approx(1 - inter / union)


def test_effective_sparsity_counts_weights_disconnected_from_the_output():
    m = {"fc1": np.ones((4, 6), bool), "fc2": np.ones((3, 4), bool), "fc3": np.ones((2, 3), bool)}
    m["fc3"][:, 1] = False  # hidden unit 1 of fc2 reaches nothing: its 4 inputs are dead too
    m["fc2"][:, 2] = False  # unit 2 of fc1 feeds nothing: its 6 inputs are dead
    eff = compare.effective_masks(m)
    assert not eff["fc2"][1].any() and not eff["fc1"][2].any()
    assert int(eff["fc1"].sum()) == 18 and int(eff["fc2"].sum()) == 6 and int(eff["fc3"].sum()) == 4
    conv = {"c": np.ones((2, 1, 3, 3), bool), "fc": np.ones((5, 2 * 4), bool)}
    conv["fc"][:, 4:] = False  # channel 1's 4 pixels reach nothing
    eff = compare.effective_masks(conv)
    assert eff["c"][0].all() and not eff["c"][1].any()


@pytest.fixture(scope="module")
def cpks(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    l1 = imp.train(make_config(method="imp", technique="l1-us", iterations=1, **TINY)).trained
    rnd = imp.train(make_config(method="imp", technique="random-us", iterations=1, **TINY)).trained
    conv = asni.train(make_config(method="asni", arch="conv2", width=0.125, **TINY), variants=("A",)).trained
    out = {}
    for name, desc in {"l1": l1, "rnd": rnd, "conv": conv}.items():
        pack(desc, root / f"{name}.cpk")
        out[name] = root / f"{name}.cpk"
    runfile.save(root / "l1.pt", l1)
    out["l1pt"] = root / "l1.pt"
    return out


def test_compare_library(cpks):
    a, b = compare.load(cpks["l1"]), compare.load(cpks["rnd"])
    res = compare.compare([a, b, a], ["l1", "rnd", "l1"], dataset="synthetic-mnist")
    assert all(0 < v <= 1 for v in res.jaccard[(0, 1)]) and res.jaccard[(0, 2)] == [0, 0, 0]
    assert res.agreement[(0, 2)] == 1.0 and 0 <= res.ensemble_accuracy <= 1
    with pytest.raises(SpecError, match="different architectures"):
        compare.compare([a, compare.load(cpks["conv"])], ["a", "conv"], predict=False)


def test_compare_command(runner, cpks, tmp_path):
    r = run_cli(runner, "compare", cpks["l1"], cpks["l1pt"], "--no-predict")
    assert r.exit_code == 0 and re.search(r"fc1\.weight\s+0\.0000\s+0\.0000", r.stdout)
    assert "Jaccard dist.  Hamming dist." in r.stdout and "0 = the same mask" in r.stdout
    png = tmp_path / "j.png"
    r = run_cli(runner, "compare", cpks["l1"], cpks["rnd"], "--dataset", "synthetic-mnist", "--plot", png)
    assert r.exit_code == 0 and png.stat().st_size > 1000 and "ensemble" in r.stdout
    r = run_cli(runner, "compare", cpks["l1"], cpks["conv"], "--no-predict")
    assert r.exit_code == 2 and "different architectures" in r.stderr and len(r.stderr.strip().splitlines()) == 1
