"""Bit codecs: exact round trips (hypothesis), shape checks, corrupted payloads raise ConnpackError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connpack.errors import ConnpackError, ShapeMismatchError, SpecError
from connpack.formats import CODECS, entropy_bits
from connpack.formats.codecs import applicable, context

shapes = st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple)


@st.composite
def bit_arrays(draw):
    shape = draw(st.one_of(shapes, st.sampled_from([(0,), (1,), (1, 1), (2, 3, 3, 3), (17, 33), (5, 0, 3)])))
    kind = draw(st.sampled_from(["iid", "zeros", "ones", "rows"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros(shape, dtype=bool)
    if kind == "ones":
        return np.ones(shape, dtype=bool)
    if kind == "rows" and len(shape) >= 2:
        p = rng.beta(0.5, 0.5, size=shape[:1] + (1,) * (len(shape) - 1))
        return rng.random(shape) < p
    p = draw(st.sampled_from([0.0005, 0.01, 0.1, 0.5, 0.9, 0.999]))
    return rng.random(shape) < p


@pytest.mark.parametrize("name", list(CODECS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=bit_arrays())
def test_round_trip(name, bits):
    if name not in applicable(bits.shape):
        with pytest.raises(ShapeMismatchError):
            CODECS[name].encode(bits, bits.shape)
        return
    payload = CODECS[name].encode(bits, bits.shape)
    out = CODECS[name].decode(payload, bits.shape)
    assert out.dtype == np.bool_ and out.shape == bits.shape
    assert np.array_equal(out, bits)
    assert CODECS[name].encode(bits, bits.shape) == payload  # deterministic


def test_context_models_round_trip():
    rng = np.random.default_rng(3)
    bits = rng.random((6, 5, 3, 3)) < rng.random((6, 5, 1, 1))
    for a in (1, 2, 3):
        for br, bc in ((0, 0), (2, 0), (0, 2), (2, 2), (6, 6)):
            p = context.encode(bits, bits.shape, (a, br, bc))
            assert p[:3] == bytes([a, min(br, 6), bc]) or (1 << br) > bits.shape[0]
            assert np.array_equal(context.decode(p, bits.shape), bits)


@pytest.mark.parametrize("name", list(CODECS))
def test_encode_checks_shape_and_dtype(name):
    with pytest.raises(ShapeMismatchError):
        CODECS[name].encode(np.zeros((4, 4), bool), (4, 5))
    with pytest.raises(SpecError):
        CODECS[name].encode(np.zeros((4, 4), np.uint8), (4, 4))
    with pytest.raises(ShapeMismatchError):
        CODECS[name].decode(b"\x00", (2, -1))


@pytest.mark.parametrize("name", list(CODECS))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_corrupt_payload_never_crashes(name, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    bits = rng.random((12, 20)) < data.draw(st.sampled_from([0.02, 0.3, 0.7]))
    payload = bytearray(CODECS[name].encode(bits, bits.shape))
    op = data.draw(st.sampled_from(["flip", "trunc", "extend", "byte"]))
    if op == "flip" and payload:
        i = data.draw(st.integers(0, len(payload) * 8 - 1))
        payload[i // 8] ^= 1 << (i % 8)
    elif op == "trunc":
        del payload[data.draw(st.integers(0, len(payload))) :]
    elif op == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=8))
    elif payload:
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    try:
        out = CODECS[name].decode(bytes(payload), bits.shape)
    except ConnpackError:
        return
    assert out.shape == bits.shape and out.dtype == np.bool_  # wrong bits are caught by the container's crc32


@pytest.mark.parametrize("p", [0.5, 0.1, 0.01, 0.001])
def test_best_codec_near_bound(p):
    rng = np.random.default_rng(7)
    bits = rng.random(200_000) < p
    bound = entropy_bits(bits.size, int(bits.sum())) / 8
    best = min(len(CODECS[n].encode(bits, bits.shape)) for n in applicable(bits.shape))
    assert best <= 1.01 * bound + 64


def test_context_beats_order0_on_row_structure():
    rng = np.random.default_rng(11)
    bits = rng.random((300, 784)) < rng.beta(0.5, 0.5, size=(300, 1))
    bound = entropy_bits(bits.size, int(bits.sum())) / 8
    assert len(context.encode(bits, bits.shape)) < 0.9 * bound


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits=bit_arrays())
def test_golomb_size_and_lower_bound(bits):
    """The writer's auto choice skips golomb by these two numbers: they must be exact / a true lower bound."""
    from connpack.formats.codecs import golomb

    size = golomb.size(bits, bits.shape)
    assert size == len(golomb.encode(bits, bits.shape))
    assert golomb.lower_bound(bits, bits.shape) <= size


def test_auto_asks_every_registered_codec(monkeypatch):
    """auto iterates the registry: a new codec module registered in CODECS is offered every section."""
    import types

    from connpack.formats import codecs, container

    tiny = types.SimpleNamespace(NAME="tiny", AUTO_STAGE=9, offer=lambda bits, shape, best, small, level: b"x")
    monkeypatch.setitem(codecs.CODECS, "tiny", tiny)
    bits = np.random.default_rng(0).random((64, 64)) < 0.3
    assert container.coded_size(bits) == 1
