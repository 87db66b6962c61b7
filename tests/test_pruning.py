"""connpack.pruning: exact counts, structure, previous masks respected, reproducible random pruning."""

import numpy as np
import pytest

from connpack import pruning
from connpack.errors import SpecError

R = np.random.default_rng(0)


def test_global_magnitude_prunes_exactly_the_requested_fraction_smallest_first():
    w = {"a": R.normal(size=(30, 20)), "b": R.normal(size=(7, 3, 3, 3)), "c": np.zeros((5, 4))}  # ties at 0
    n = sum(v.size for v in w.values())
    for p in (0.0, 0.1, 0.37, 0.9):
        m = pruning.global_magnitude(w, p)
        pruned = sum(int((~v).sum()) for v in m.values())
        assert pruned == round(p * n)
        kept = np.concatenate([np.abs(w[k])[m[k]] for k in w])
        gone = np.concatenate([np.abs(w[k])[~m[k]] for k in w])
        if gone.size and kept.size:
            assert gone.max() <= kept.min()


def test_global_magnitude_keeps_pruned_weights_pruned():
    w = {"a": R.normal(size=(40, 10))}
    prev = pruning.global_magnitude(w, 0.5)
    w2 = {"a": np.where(prev["a"], w["a"], 100.0)}  # pruned ones grew large: they must stay pruned
    m = pruning.global_magnitude(w2, 0.6, prev)
    assert not (m["a"] & ~prev["a"]).any() and int((~m["a"]).sum()) == 240


def test_unstructured_step_prunes_fraction_of_remaining():
    w = R.normal(size=(50, 40))
    m1 = pruning.compute_mask(w, None, fraction=0.2)
    m2 = pruning.compute_mask(w, m1, fraction=0.2)
    assert int(m1.sum()) == 1600 and int(m2.sum()) == 1600 - round(0.2 * 1600)
    assert not (m2 & ~m1).any()


@pytest.mark.parametrize("score", ["l1", "l2", "linf", "random"])
def test_structured_pruning_removes_whole_input_channels(score):
    w = R.normal(size=(8, 10, 3, 3))
    m = None
    for it in range(3):
        m = pruning.compute_mask(w, m, fraction=0.2, score=score, structured=True, iteration=it)
        per_channel = m.reshape(8, 10, 9).transpose(1, 0, 2).reshape(10, -1)
        assert np.all(per_channel.all(1) | ~per_channel.any(1))  # each input channel all kept or all pruned
    assert int(m.any(axis=(0, 2, 3)).sum()) == 10 - 2 - 2 - 1  # round(.2*10), round(.2*8), round(.2*6)


def test_l1_structured_removes_the_smallest_norm_channel():
    w = np.ones((4, 5))
    w[:, 3] = 0.01
    m = pruning.compute_mask(w, None, fraction=0.2, score="l1", structured=True)
    assert not m[:, 3].any() and m[:, [0, 1, 2, 4]].all()


def test_random_pruning_is_reproducible_and_depends_on_iteration():
    w = R.normal(size=(20, 20))
    a = pruning.compute_mask(w, None, score="random", seed=3, iteration=1)
    assert np.array_equal(a, pruning.compute_mask(w, None, score="random", seed=3, iteration=1))
    assert not np.array_equal(a, pruning.compute_mask(w, None, score="random", seed=3, iteration=2))


def test_prune_step_hybrid_fc_only_and_global():
    w = {"conv": R.normal(size=(6, 5, 3, 3)), "fc": R.normal(size=(10, 30))}
    ones = {k: np.ones(v.shape, bool) for k, v in w.items()}
    h = pruning.prune_step(w, ones, "hybrid")
    assert int(h["conv"].any(axis=(0, 2, 3)).sum()) == 4 and int(h["fc"].sum()) == 240
    f = pruning.prune_step(w, ones, "fc-only")
    assert f["conv"].all() and int(f["fc"].sum()) == 240
    g = pruning.prune_step(w, ones, "l1-us", scope="global")
    n = w["conv"].size + w["fc"].size
    assert sum(int((~m).sum()) for m in g.values()) == round(0.2 * n)


@pytest.mark.parametrize("kwargs", [{"fraction": 0.0}, {"fraction": 1.0}, {"fraction": -0.2}])
def test_bad_fraction_is_a_spec_error(kwargs):
    with pytest.raises(SpecError):
        pruning.compute_mask(np.ones((3, 3)), None, **kwargs)


def test_bad_technique_scope_and_sparsity():
    w = {"a": np.ones((3, 3))}
    with pytest.raises(SpecError, match="unknown pruning technique"):
        pruning.prune_step(w, {"a": np.ones((3, 3), bool)}, "l3-s")
    with pytest.raises(SpecError, match="scope"):
        pruning.prune_step(w, {"a": np.ones((3, 3), bool)}, "l1-us", scope="nope")
    with pytest.raises(SpecError, match="sparsity"):
        pruning.global_magnitude(w, 1.0)
