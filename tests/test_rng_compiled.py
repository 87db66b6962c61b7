"""The compiled generator (connpack._rngc) writes the same bytes as the numpy reference in connpack.rng.

The reference is selected in-process by setting ``rng._C = None`` (what CONNPACK_RNG=numpy does at import).
test_rng.py and test_golden_networks.py check the golden files and the Random123 vectors with the default
(compiled) backend; the slow test_numpy_backend_passes_the_golden_tests runs them again under CONNPACK_RNG=numpy.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connpack import rng
from connpack.specs import InitSpec

DISTS = ("signed_constant", "kaiming_normal", "xavier_normal", "kaiming_uniform", "zeros", "ones")
SHAPES = [(1,), (7,), (3, 5), (64, 3, 3, 3), (10, 1), (2, 3, 1, 1), (300, 301), (1 << 18) + 3]


def test_the_compiled_kernel_is_built_and_the_default():
    assert rng.backend() == "compiled", "connpack._rngc is not built: run `pip install -e .` (needs a C compiler)"


def _both(fn):
    """(compiled result, reference result) of fn()."""
    got = fn()
    saved, rng._C = rng._C, None
    try:
        want = fn()
    finally:
        rng._C = saved
    return got, want


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_generate_equals_reference(dist, shape):
    init = InitSpec(dist=dist, p_positive=0.3, scale=1.5, gain=2.0**0.5)
    for seed, index in [(0, 0), (12345, 3), (2**64 - 1, 2**32 - 1), (2**32, 7)]:
        _same(*_both(lambda: rng.generate(init, seed, index, shape)))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    index=st.integers(0, 2**32 - 1),
    stream=st.integers(0, 2**32 - 1),
    dims=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    dist=st.sampled_from(DISTS[:4]),
    p=st.floats(0, 1),
    scale=st.floats(0.01, 10),
)
def test_property_generate_equals_reference(seed, index, stream, dims, dist, p, scale):
    init = InitSpec(dist=dist, p_positive=p, scale=scale)
    _same(*_both(lambda: rng.generate(init, seed, index, tuple(dims), stream=stream)))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1), index=st.integers(0, 2**32 - 1), start=st.integers(0, 2**40), n=st.integers(0, 3000)
)
def test_property_words_equal_reference(seed, index, start, n):
    _same(*_both(lambda: rng.random_words(seed, index, n, stream=index ^ 5, start=start)))


def test_words_across_a_block_counter_carry():
    start = 4 * (2**32 - 3) + 1  # blocks 2**32-3 .. 2**32+2: the low counter word wraps
    _same(*_both(lambda: rng.random_words(9, 1, 41, start=start)))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1001, (1 << 18) + 1, (1 << 20) + 6])
def test_transforms_equal_reference(n):
    _same(*_both(lambda: rng.uniform(5, 6, (n,))))
    _same(*_both(lambda: rng.normal(5, 6, (n,))))
    _same(*_both(lambda: rng.normal_f64(5, 6, (n,), stream=2)))
    _same(*_both(lambda: rng.uniform_f64(5, 6, (n,), stream=2)))
    _same(*_both(lambda: rng.scores_uniform(5, 6, (n,), -0.25, 0.75)))
    _same(*_both(lambda: rng.random_words(5, 6, n)))


@pytest.mark.parametrize("dist", DISTS)
def test_generate_range_is_a_slice_of_generate(dist):
    init = InitSpec(dist=dist)
    shape = (33, 17, 3)
    full = rng.generate(init, 77, 4, shape).ravel()
    for start, stop in [(0, 0), (0, 1), (1, 2), (5, 600), (1, 1683), (1682, 1683), (0, 1683)]:
        got, want = _both(lambda: rng.generate_range(init, 77, 4, shape, start, stop))
        _same(got, want)
        _same(got, full[start:stop])


def test_generate_range_refuses_bad_bounds():
    from connpack.errors import SpecError

    with pytest.raises(SpecError, match="start <= stop"):
        rng.generate_range(InitSpec(dist="kaiming_normal"), 1, 0, (4, 4), 3, 17)


def test_split_over_threads_changes_nothing(monkeypatch):
    init = InitSpec(dist="kaiming_normal")
    one = rng.generate(init, 3, 1, (1 << 19) + 5)
    monkeypatch.setattr(rng, "_workers", lambda: 5)
    _same(rng.generate(init, 3, 1, (1 << 19) + 5), one)


def _run(code: str, **env) -> str:
    e = {k: v for k, v in os.environ.items() if k != "CONNPACK_RNG"}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, check=True).stdout


def test_environment_selects_the_backend():
    code = (
        "from connpack import rng; from connpack.specs import InitSpec; "
        "print(rng.backend(), rng.tensor_hash(rng.generate(InitSpec(dist='kaiming_normal'), 1, 2, (999, 7))))"
    )
    compiled, numpy = _run(code).split(), _run(code, CONNPACK_RNG="numpy").split()
    assert compiled[0] == "compiled" and numpy[0] == "numpy"
    assert compiled[1] == numpy[1]


@pytest.mark.slow  # ~30 s of CPU: the two modules again, under the reference
@pytest.mark.parametrize("module", ["tests/test_rng.py", "tests/test_golden_networks.py"])
def test_numpy_backend_passes_the_golden_tests(module):
    env = {**os.environ, "CONNPACK_RNG": "numpy", "OMP_NUM_THREADS": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", module],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-2000:]
