"""Bounded-memory packing and unpacking give the bytes and tensors of the simple whole-network path."""

from __future__ import annotations

import numpy as np
import pytest

from connpack import formats, packing, rng
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from tests.test_golden_networks import golden_networks


def _backends():
    return [pytest.param(True, id="compiled"), pytest.param(False, id="numpy")]


@pytest.fixture(params=_backends())
def backend(request, monkeypatch):
    if not request.param:
        monkeypatch.setattr(rng, "_C", None)
    return request.param


@pytest.mark.parametrize("name", sorted(golden_networks()))
@pytest.mark.parametrize("hashes", [True, False], ids=["hashed", "unhashed"])
def test_pack_equals_encode_of_to_container(tmp_path, backend, name, hashes):
    desc, values = golden_networks()[name]
    if hashes:
        desc.record_hashes(desc.generated())
    size = packing.pack(desc, tmp_path / "a.cpk", values=values)
    data = (tmp_path / "a.cpk").read_bytes()
    assert size == len(data)
    assert data == formats.encode(packing.to_container(desc, values))


def test_magnitude_order_in_chunks_equals_the_reference(monkeypatch):
    """The compiled counting sort, run over several chunks of G, is magnitude_order's permutation, both ways."""
    monkeypatch.setattr(packing, "_CHUNK", 1000)
    spec = NetworkSpec(
        model=ModelSpec(arch="lenet300", in_shape=(1, 8, 8), width=0.05),
        rng=RngSpec(seed=11),
        init=InitSpec(dist="kaiming_uniform"),
    )
    shape = (37, 101)
    bits = (np.arange(37 * 101).reshape(shape) * 7919 % 13) < 4
    g = rng.generate(spec.init, 11, 2, shape)
    order = packing.magnitude_order(g)
    fwd = packing._reorder(spec, "fc1.weight", 2, bits, inverse=False)
    assert np.array_equal(fwd.ravel(), bits.ravel()[order])
    assert np.array_equal(packing._reorder(spec, "fc1.weight", 2, fwd, inverse=True), bits)


def test_chunked_hash_equals_tensor_hash(monkeypatch):
    monkeypatch.setattr(packing, "_CHUNK", 999)
    spec = NetworkSpec(model=ModelSpec(arch="lenet300"), rng=RngSpec(seed=5), init=InitSpec(dist="kaiming_normal"))
    want = rng.tensor_hash(rng.generate(spec.init, 5, 1, (30, 77)))
    assert packing._weight_hash(spec, "fc2.weight", 1, (30, 77)) == want


def test_state_dict_is_the_same_on_both_backends(monkeypatch):
    desc, _ = golden_networks()["mask"]
    want = desc.state_dict()
    monkeypatch.setattr(rng, "_C", None)
    got = desc.state_dict()
    assert set(got) == set(want)
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)


@pytest.mark.parametrize("name", ["mask", "flip"])
def test_chunked_hash_check_while_generating(monkeypatch, backend, name):
    from connpack import description
    from connpack.errors import WeightHashError

    desc, _ = golden_networks()[name]
    desc.record_hashes(desc.generated())
    want = desc.state_dict()
    monkeypatch.setattr(description, "_HASH_CHUNK", 77)  # fc1 (960 weights) in 13 chunks
    got = desc.state_dict()
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    desc.weight_hashes["fc1.weight"] = "0" * 16
    with pytest.raises(WeightHashError, match="fc1.weight"):
        desc.state_dict()
