"""connpack's weight generator: Philox4x32-10 streams and fixed float transforms (numpy only).

This text is normative: it is the RNG section of the .cpk format spec.

Block function. ``philox4x32_10(ctr, key)`` is Random123's Philox4x32 with 10 rounds. State
(c0, c1, c2, c3), key (k0, k1), all uint32. One round, with 64-bit products
p0 = 0xD2511F53 * c0 and p1 = 0xCD9E8D57 * c2 (hi = p >> 32, lo = p mod 2**32)::

    (c0, c1, c2, c3) <- (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0))

Between rounds the key is bumped: k0 += 0x9E3779B9, k1 += 0xBB67AE85 (mod 2**32); 10 rounds,
9 bumps. Output is the final state. Verified against the Random123 known-answer vectors.

Stream. A stream is keyed by (seed, tensor index, stream id): key = (seed mod 2**32, seed >> 32)
for seed in [0, 2**64); block b (0 <= b < 2**64) has counter (b mod 2**32, b >> 32, index, stream)
with index, stream in [0, 2**32). Word i of the stream is word (i mod 4) of block i // 4. Any
slice of words can be generated without those before it. Stream ids: 0 = weights, 1 = scores,
2 = data.

Uniform. Element i (C order) uses word w_i: u = (w_i >> 8) * 2**-24, exact in float32, in [0, 1).

Normal (Box-Muller, float64, one final rounding to float32). Pair j uses words w_{2j}, w_{2j+1}:
k1 = (w_{2j} >> 8) + 1 (so u1 = k1 * 2**-24 in (0, 1]), k2 = w_{2j+1} >> 8 (u2 = k2 * 2**-24);
r = sqrt(-2 ln u1); element 2j = r cos(2 pi u2), element 2j+1 = r sin(2 pi u2). An odd count
generates ceil(n/2) pairs and drops the last value. To make the bits identical on every machine
(libm and numpy's SIMD kernels disagree in the last place: on an AVX-512 host np.log differs from
C log on ~0.15% of inputs), ln, cos and sin are defined by the float64 programs below, which use
only IEEE-754 binary64 +, -, *, /, sqrt (round to nearest even, no fused multiply-add, evaluated
in the order written). Coefficients: L(n) = fl(1/n) and F(n) = fl(1/n!), the float64 nearest to
the exact value (n! < 2**53 here, so Python's ``1.0 / n`` and ``1.0 / math.factorial(n)``).

* ln u1: write u1 = m * 2**e exactly with m in [0.5, 1) (frexp); if m < 0.7071067811865476
  (0x3FE6A09E667F3BCD) then m = 2m, e = e - 1. s = (m - 1) / (m + 1); z = s*s;
  P = L(21); for n = 19, 17, ..., 1: P = P*z + L(n).
  ln u1 = ((P*s)*2 + e*LN2_LO) + e*LN2_HI with LN2_HI = 0x3FE62E42FEE00000,
  LN2_LO = 0x3DEA39EF35793C76 (fdlibm's split of ln 2; e*LN2_HI is exact).
* angle: q = k2 >> 22 (quadrant), a = k2 mod 2**22, a' = min(a, 2**22 - a), swap = (a' != a) XOR
  (q odd). t = a' * TWO_PI_2M24 with TWO_PI_2M24 = fl(2*pi) * 2**-24 = 0x3E9921FB54442D18,
  so t in [0, pi/4]; z = t*t.
  S = F(17); for n = 15, 13, ..., 1: S = S*z + (-1)**((n-1)/2) * F(n); sin_t = S*t.
  K = F(16); for n = 14, 12, ..., 0: K = K*z + (-1)**(n/2) * F(n); cos_t = K.
  cos = (sin_t if swap else cos_t) * (-1 if q in {1, 2} else +1);
  sin = (cos_t if swap else sin_t) * (-1 if q in {2, 3} else +1).
* the normals: r = sqrt(-2 * ln u1); x_{2j} = r*cos, x_{2j+1} = r*sin.

Init transforms (``generate``; stream 0 unless given) compute in float64 and round to float32
once. fan_in/fan_out: Linear (out, in) -> (in, out); Conv (out, in, *k) -> (in*prod k, out*prod k);
1-D (n,) -> (n, n). With u = uniform and x = normal values (float64):

* signed_constant: M = (scale*gain) / sqrt(fan_in); value = +M if u < p_positive else -M
* kaiming_normal: S = (scale*gain) / sqrt(fan_in); value = x*S
* xavier_normal: S = scale * sqrt(2 / (fan_in + fan_out)); value = x*S    (gain not applied)
* kaiming_uniform: B = (scale*gain) * sqrt(3 / fan_in); value = ((u*2) - 1) * B
* zeros / ones: 0.0 / 1.0 (no words consumed)

M, S, B are float64 scalars (fan counts converted exactly), then applied elementwise.
``scores_uniform``: high - u * (high - low) on stream 1, in (low, high].
``tensor_hash``: first 16 hex digits of sha256 of the little-endian float32 C-order bytes.

Implementation: the numpy code in this module is the reference. connpack._rngc (C, connpack/_rngc.c, built
by ``pip install``) computes the same bytes ~10x faster and is used when present; CONNPACK_RNG=numpy
selects the reference (tests/test_rng_compiled.py checks that the two agree).
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from connpack.errors import SpecError

__all__ = [
    "STREAM_WEIGHTS",
    "STREAM_SCORES",
    "STREAM_DATA",
    "philox4x32_10",
    "random_words",
    "uniform",
    "normal",
    "normal_f64",
    "uniform_f64",
    "fans",
    "generate",
    "generate_range",
    "scores_uniform",
    "backend",
    "kernel",
    "tensor_hash",
]

STREAM_WEIGHTS = 0
STREAM_SCORES = 1
STREAM_DATA = 2

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ROUNDS = 10

_BLOCK_CHUNK = 1 << 15  # blocks per inner chunk: keeps the working set in L2
_PAR_MIN = 1 << 20  # elements below which we do not bother with threads
_FUSED_CHUNK = 1 << 15  # elements per cache-sized transform chunk (even)
_MAX_WORDS = 1 << 40  # sanity cap on one request

# Constants of the portable ln / sin / cos (see module docstring).
_SQRT_HALF = 0.7071067811865476
_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
_TWO_PI_2M24 = 2.0 * math.pi * 2.0**-24
_LOG_COEFFS = [1.0 / n for n in range(21, 0, -2)]  # C(21), C(19), ..., C(1)
_SIN_COEFFS = [(-1.0) ** ((n - 1) // 2) / math.factorial(n) for n in range(17, 0, -2)]  # c(17)..c(1)
_COS_COEFFS = [(-1.0) ** (n // 2) / math.factorial(n) for n in range(16, -1, -2)]  # c(16)..c(0)
_FRAC = np.int64((1 << 52) - 1)
_FRAC_SQRT2 = np.int64(int(np.array(2.0 * _SQRT_HALF).view(np.int64)) & ((1 << 52) - 1))


def _load_compiled():
    """connpack._rngc (the C kernel, same bytes) unless CONNPACK_RNG=numpy or it was not built."""
    choice = os.environ.get("CONNPACK_RNG", "compiled").strip().lower()
    if choice == "numpy":
        return None
    if choice not in ("", "compiled"):
        raise SpecError(f"CONNPACK_RNG must be 'compiled' or 'numpy', got {choice!r}")
    try:
        from connpack import _rngc
    except ImportError:  # built without a C compiler: the reference is the generator
        return None
    _rngc.set_constants(_SIN_COEFFS, _COS_COEFFS, _LN2_HI, _LN2_LO, _TWO_PI_2M24)
    if list(_rngc.log_coeffs()) != _LOG_COEFFS:  # pragma: no cover (a miscompiled constant table)
        return None
    return _rngc


_C = _load_compiled()
# kinds of _rngc.fill
_K_WORDS, _K_UNIFORM, _K_KAIMING_UNIFORM, _K_SCORES, _K_SIGNED, _K_NORMAL, _K_NORMAL64, _K_UNIFORM64 = range(8)


def kernel():
    """The compiled kernel (connpack._rngc), or None when the numpy reference is the generator."""
    return _C


def backend() -> str:
    """'compiled' (connpack._rngc) or 'numpy' (this module's reference code); both give the same bytes."""
    return "numpy" if _C is None else "compiled"


# --------------------------------------------------------------------------- validation
def _check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise SpecError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise SpecError(f"seed must be an integer in [0, 2**64), got {seed}")
    return seed


def _check_u32(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SpecError(f"{what} must be an integer in [0, 2**32), got {value!r}")
    value = int(value)
    if not 0 <= value < 2**32:
        raise SpecError(f"{what} must be an integer in [0, 2**32), got {value}")
    return value


def _check_count(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise SpecError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise SpecError(f"shape must be a tuple of non-negative integers, got {shape!r}") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or int(d) < 0:
            raise SpecError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    dims = tuple(int(d) for d in dims)
    if math.prod(dims) > _MAX_WORDS:
        raise SpecError(f"shape {dims} has too many elements (max {_MAX_WORDS})")
    return dims


def _check_args(seed, index, stream, shape):
    return _check_seed(seed), _check_u32(index, "tensor index"), _check_u32(stream, "stream id"), _check_shape(shape)


# --------------------------------------------------------------------------- Philox
def _philox_inplace(c0, c1, c2, c3, k0, k1, p0, p1) -> None:
    """Ten Philox4x32 rounds on uint64 arrays holding 32-bit values; c* overwritten with the output.

    k0/k1 are Python ints or uint64 arrays broadcastable to c*; p0/p1 are scratch arrays.
    """
    per_row = isinstance(k0, np.ndarray)
    for r in range(_ROUNDS):
        if r:
            if per_row:
                k0 = (k0 + np.uint64(_W0)) & _MASK32
                k1 = (k1 + np.uint64(_W1)) & _MASK32
            else:
                k0 = (k0 + _W0) & 0xFFFFFFFF
                k1 = (k1 + _W1) & 0xFFFFFFFF
        kk0 = k0 if per_row else np.uint64(k0)
        kk1 = k1 if per_row else np.uint64(k1)
        np.multiply(c0, _M0, out=p0)
        np.multiply(c2, _M1, out=p1)
        np.right_shift(p1, _S32, out=c0)
        c0 ^= c1
        c0 ^= kk0
        np.bitwise_and(p1, _MASK32, out=c1)
        np.right_shift(p0, _S32, out=c2)
        c2 ^= c3
        c2 ^= kk1
        np.bitwise_and(p0, _MASK32, out=c3)


def philox4x32_10(counter, key) -> np.ndarray:
    """Random123 Philox4x32-10 block function.

    counter: uint32-valued array of shape (n, 4) (or (4,)); key: shape (2,) or (n, 2).
    Returns uint32 array of the counter's shape.
    """
    ctr = np.asarray(counter)
    k = np.asarray(key)
    if ctr.dtype.kind not in "ui" or k.dtype.kind not in "ui":
        raise SpecError("philox4x32_10: counter and key must be integer arrays")
    single = ctr.ndim == 1
    ctr2 = ctr.reshape(1, -1) if single else ctr
    if ctr2.ndim != 2 or ctr2.shape[1] != 4:
        raise SpecError(f"philox4x32_10: counter must have shape (n, 4), got {ctr.shape}")
    if not (k.shape == (2,) or (k.ndim == 2 and k.shape == (ctr2.shape[0], 2))):
        raise SpecError(f"philox4x32_10: key must have shape (2,) or (n, 2), got {k.shape}")
    if (ctr2.size and (ctr2.min() < 0 or ctr2.max() > 0xFFFFFFFF)) or (
        k.size and (k.min() < 0 or k.max() > 0xFFFFFFFF)
    ):
        raise SpecError("philox4x32_10: counter and key words must be in [0, 2**32)")
    c = ctr2.astype(np.uint64)
    c0, c1, c2, c3 = (np.ascontiguousarray(c[:, j]) for j in range(4))
    if k.ndim == 1:
        k0, k1 = int(k[0]), int(k[1])
    else:
        k0 = k[:, 0].astype(np.uint64)
        k1 = k[:, 1].astype(np.uint64)
    p0 = np.empty_like(c0)
    p1 = np.empty_like(c0)
    _philox_inplace(c0, c1, c2, c3, k0, k1, p0, p1)
    out = np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)
    return out[0] if single else out


def _words_into(out: np.ndarray, seed: int, index: int, stream: int, start: int) -> None:
    """Fill uint32 ``out`` (1-D) with stream words start .. start+len(out)-1, chunked for cache."""
    n = out.shape[0]
    if n == 0:
        return
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    b_first = start // 4
    b_last = (start + n - 1) // 4
    nb_total = b_last - b_first + 1
    cap = min(nb_total, _BLOCK_CHUNK)
    c0 = np.empty(cap, np.uint64)
    c1 = np.empty(cap, np.uint64)
    c2 = np.empty(cap, np.uint64)
    c3 = np.empty(cap, np.uint64)
    p0 = np.empty(cap, np.uint64)
    p1 = np.empty(cap, np.uint64)
    blk = np.empty((cap, 4), np.uint32)
    base = np.arange(cap, dtype=np.uint64)
    pos = 0  # next output position
    b = b_first
    while b <= b_last:
        m = min(cap, b_last - b + 1)
        s0, s1, s2, s3, q0, q1 = c0[:m], c1[:m], c2[:m], c3[:m], p0[:m], p1[:m]
        # block numbers b .. b+m-1 split into low/high 32-bit counter words
        lo = b & 0xFFFFFFFF
        if lo + m <= 2**32:
            np.add(base[:m], np.uint64(lo), out=s0)
            s1.fill(b >> 32)
        else:  # the chunk crosses a 2**32 block boundary: rare, do it with exact arithmetic
            full = np.uint64(b) + base[:m]
            np.bitwise_and(full, _MASK32, out=s0)
            np.right_shift(full, _S32, out=s1)
        s2.fill(index)
        s3.fill(stream)
        _philox_inplace(s0, s1, s2, s3, k0, k1, q0, q1)
        bl = blk[:m]
        bl[:, 0] = s0
        bl[:, 1] = s1
        bl[:, 2] = s2
        bl[:, 3] = s3
        flat = bl.reshape(-1)
        skip = (start - 4 * b_first) if b == b_first else 0
        take = min(4 * m - skip, n - pos)
        out[pos : pos + take] = flat[skip : skip + take]
        pos += take
        b += m


def _parallel(n: int, fn) -> None:
    """Run fn(lo, hi) over [0, n) in chunks, on threads when n is large (numpy releases the GIL).

    Results never depend on the split: each chunk is a pure function of its range.
    """
    workers = max(1, min(os.cpu_count() or 1, 8))
    if n < _PAR_MIN or workers == 1:
        fn(0, n)
        return
    step = -(-n // (workers * 4))
    step = -(-step // 8) * 8  # multiple of 8 keeps normal pairs and blocks aligned
    ranges = [(lo, min(n, lo + step)) for lo in range(0, n, step)]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for f in [ex.submit(fn, lo, hi) for lo, hi in ranges]:
            f.result()


_C_PAR_MIN = 1 << 18  # elements below which the compiled kernel runs on the calling thread
_pool_state: list = [None, None]  # (executor, pid): rebuilt after a fork


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def _pool() -> ThreadPoolExecutor:
    if _pool_state[1] != os.getpid():
        _pool_state[:] = [ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="connpack-rng"), os.getpid()]
    return _pool_state[0]


def _cfill(
    out: np.ndarray,
    kind: int,
    seed: int,
    index: int,
    stream: int,
    start: int = 0,
    p1: float = 0.0,
    p2: float = 0.0,
    thr: int = 0,
) -> np.ndarray:
    """Fill the 1-D ``out`` with elements start .. start+len-1 from the C kernel, split over threads (the
    kernel releases the GIL; each piece is a pure function of its range, so the split changes nothing)."""
    n = out.shape[0]
    workers = _workers()
    if n < _C_PAR_MIN or workers == 1:
        _C.fill(out, kind, seed, index, stream, start, p1, p2, thr)
        return out
    step = -(-n // workers)
    step = -(-step // 8) * 8
    futures = [
        _pool().submit(_C.fill, out[lo : lo + step], kind, seed, index, stream, start + lo, p1, p2, thr)
        for lo in range(0, n, step)
    ]
    for f in futures:
        f.result()
    return out


def random_words(seed: int, index: int, n: int, *, stream: int = STREAM_WEIGHTS, start: int = 0) -> np.ndarray:
    """Words start .. start+n-1 of the stream keyed by (seed, index, stream), as uint32[n]."""
    seed = _check_seed(seed)
    index = _check_u32(index, "tensor index")
    stream = _check_u32(stream, "stream id")
    n = _check_count(n, "word count")
    start = _check_count(start, "start")
    if n > _MAX_WORDS:
        raise SpecError(f"word count {n} is too large (max {_MAX_WORDS})")
    if start + n > 4 * 2**64:
        raise SpecError("requested words run past the end of the stream (2**66 words)")
    out = np.empty(n, np.uint32)
    if _C is not None and start + n < 2**64:
        return _cfill(out, _K_WORDS, seed, index, stream, start)
    _parallel(n, lambda lo, hi: _words_into(out[lo:hi], seed, index, stream, start + lo))
    return out


# --------------------------------------------------------------------------- transforms
def _horner(z: np.ndarray, coeffs, scratch: np.ndarray) -> np.ndarray:
    """coeffs[0]*z^(k) + ... evaluated as c_last + z*(...(c_1 + z*c_0)); result in scratch."""
    scratch.fill(coeffs[0])
    for c in coeffs[1:]:
        scratch *= z
        scratch += c
    return scratch


def _ln_portable(u: np.ndarray) -> np.ndarray:
    """ln(u) for positive normal float64 u, from +,-,*,/ only: deterministic on any IEEE-754 machine.

    frexp is done on the bits: u = m * 2**e with m in [0.5, 1); if m < sqrt(1/2) use (2m, e-1).
    """
    bits = u.view(np.int64)
    mant = bits & _FRAC
    small = mant < _FRAC_SQRT2  # m < sqrt(1/2)  <=>  fraction bits of 2m below those of sqrt(2)
    ex = bits >> 52
    ex -= 1022
    ex -= small
    ef = ex.astype(np.float64)
    sm = small.astype(np.int64)
    sm += 1022
    sm <<= 52
    mant |= sm
    m = mant.view(np.float64)
    s = m - 1.0
    m += 1.0
    s /= m
    z = s * s
    p = _horner(z, _LOG_COEFFS, m)
    p *= s
    p *= 2.0
    ef_lo = ef * _LN2_LO
    p += ef_lo
    ef *= _LN2_HI
    p += ef
    return p


def _sincos_2pi(k: np.ndarray):
    """(cos, sin) of 2*pi*k*2**-24 for uint32 k in [0, 2**24); exact integer range reduction."""
    k = k.astype(np.uint32, copy=False)
    q = k >> np.uint32(22)
    a = k & np.uint32((1 << 22) - 1)
    b = np.uint32(1 << 22) - a
    flip = b < a  # a > 2**21
    np.minimum(a, b, out=a)
    t = a.astype(np.float64)
    t *= _TWO_PI_2M24
    z = t * t
    sin_t = _horner(z, _SIN_COEFFS, np.empty_like(z))
    sin_t *= t
    cos_t = _horner(z, _COS_COEFFS, t)
    swap = (q & np.uint32(1)).astype(bool)
    swap ^= flip
    cos = np.where(swap, sin_t, cos_t)
    sin = np.where(swap, cos_t, sin_t)
    # signs: cos < 0 in quadrants 1, 2; sin < 0 in quadrants 2, 3 (multiplying by +-1 is exact)
    sgn = ((q + np.uint32(1)) & np.uint32(2)).astype(np.float64)
    np.subtract(1.0, sgn, out=sgn)
    cos *= sgn
    sgn = (q & np.uint32(2)).astype(np.float64)
    np.subtract(1.0, sgn, out=sgn)
    sin *= sgn
    return cos, sin


def _normal_pairs_into(out: np.ndarray, seed: int, index: int, stream: int, pair0: int) -> None:
    """Fill float64 ``out`` (even length 2m) with normals of pairs pair0 .. pair0+m-1."""
    n = out.shape[0]
    w = np.empty(n, np.uint32)
    _words_into(w, seed, index, stream, 2 * pair0)
    k1 = (w[0::2] >> 8).astype(np.float64)
    k1 += 1.0
    k1 *= 2.0**-24
    r = _ln_portable(k1)
    r *= -2.0
    np.sqrt(r, out=r)
    cos, sin = _sincos_2pi(w[1::2] >> 8)
    np.multiply(r, cos, out=out[0::2])
    np.multiply(r, sin, out=out[1::2])


def normal_f64(seed: int, index: int, shape, *, stream: int = STREAM_WEIGHTS) -> np.ndarray:
    """Box-Muller standard normals in float64 (before the single rounding to float32)."""
    seed = _check_seed(seed)
    index = _check_u32(index, "tensor index")
    stream = _check_u32(stream, "stream id")
    shape = _check_shape(shape)
    n = math.prod(shape)
    if _C is not None:
        return _cfill(np.empty(n, np.float64), _K_NORMAL64, seed, index, stream).reshape(shape)
    n_even = n + (n & 1)
    buf = np.empty(n_even, np.float64)
    chunk = 1 << 16  # words per inner chunk (even)

    def work(lo: int, hi: int) -> None:
        for a in range(lo, hi, chunk):
            b = min(hi, a + chunk)
            _normal_pairs_into(buf[a:b], seed, index, stream, a // 2)

    _parallel(n_even, work)
    return buf[:n].reshape(shape)


def _fused(shape, seed: int, index: int, stream: int, kind: str, post) -> np.ndarray:
    """float32 tensor whose C-order chunks are post(float64 values) rounded once (see _fused_range)."""
    return _fused_range(0, math.prod(shape), seed, index, stream, kind, post).reshape(shape)


def _fused_range(start: int, stop: int, seed: int, index: int, stream: int, kind: str, post) -> np.ndarray:
    """Elements start .. stop-1 (C order) as float32: post(float64 values) rounded once.

    kind "normal": post gets standard normals; kind "uniform": post gets u in [0, 1); kind "words": post
    gets the raw uint32 words. Chunks stay in cache and run on threads; the result never depends on the
    chunking.
    """
    if kind == "normal" and start & 1:  # normals come in pairs: start on the pair, drop its first value
        return _fused_range(start - 1, stop, seed, index, stream, kind, post)[1:]
    n = stop - start
    out = np.empty(n, np.float32)
    chunk = _FUSED_CHUNK  # even, so every chunk but the last starts and ends on a normal pair

    def work(lo: int, hi: int) -> None:
        for a in range(lo, hi, chunk):
            b = min(hi, a + chunk)
            m = b - a
            if kind == "normal":
                buf = np.empty(m + (m & 1), np.float64)
                _normal_pairs_into(buf, seed, index, stream, (start + a) // 2)
                v = buf[:m]
            else:
                w = np.empty(m, np.uint32)
                _words_into(w, seed, index, stream, start + a)
                if kind == "words":
                    v = w
                else:
                    v = (w >> np.uint32(8)).astype(np.float64)
                    v *= 2.0**-24
            out[a:b] = post(v)

    _parallel(n, work)
    return out


def uniform_f64(seed: int, index: int, shape, *, stream: int = STREAM_WEIGHTS) -> np.ndarray:
    """u = (word >> 8) * 2**-24 in [0, 1) as float64 (exactly representable in float32 too)."""
    seed, index, stream, shape = _check_args(seed, index, stream, shape)
    if _C is not None:
        return _cfill(np.empty(math.prod(shape), np.float64), _K_UNIFORM64, seed, index, stream).reshape(shape)
    w = random_words(seed, index, math.prod(shape), stream=stream)
    u = (w >> 8).astype(np.float64)
    u *= 2.0**-24
    return u.reshape(shape)


def uniform(seed: int, index: int, shape, *, stream: int = STREAM_WEIGHTS) -> np.ndarray:
    """Uniform float32 in [0, 1): element i (C order) = (word_i >> 8) * 2**-24 (exact)."""
    seed, index, stream, shape = _check_args(seed, index, stream, shape)
    if _C is not None:
        return _cfill(np.empty(math.prod(shape), np.float32), _K_UNIFORM, seed, index, stream).reshape(shape)
    return _fused(shape, seed, index, stream, "uniform", _identity)


def normal(seed: int, index: int, shape, *, stream: int = STREAM_WEIGHTS) -> np.ndarray:
    """Standard normal float32: Box-Muller in float64 rounded once."""
    seed, index, stream, shape = _check_args(seed, index, stream, shape)
    if _C is not None:
        return _cfill(np.empty(math.prod(shape), np.float32), _K_NORMAL, seed, index, stream, p1=1.0).reshape(shape)
    return _fused(shape, seed, index, stream, "normal", _identity)


def _identity(v):
    return v


# --------------------------------------------------------------------------- init
def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out): Linear (out, in) -> (in, out); Conv (out, in, *k) -> (in*K, out*K); (n,) -> (n, n)."""
    shape = _check_shape(shape)
    if len(shape) == 0:
        raise SpecError("fans: a scalar tensor has no fan-in")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def generate(init, seed: int, index: int, shape, *, stream: int = STREAM_WEIGHTS) -> np.ndarray:
    """Regenerate one tensor from its InitSpec, computed in float64 and rounded to float32 once."""
    shape = _check_shape(shape)
    return generate_range(init, seed, index, shape, 0, math.prod(shape), stream=stream).reshape(shape)


def generate_range(
    init,
    seed: int,
    index: int,
    shape,
    start: int,
    stop: int,
    *,
    stream: int = STREAM_WEIGHTS,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Elements start .. stop-1 (C order) of ``generate(init, seed, index, shape)``, as a 1-D float32 array,
    without the others: a large tensor can be regenerated chunk by chunk in bounded memory. ``out``: a
    contiguous float32 array of stop - start elements to write them to (returned)."""
    got = _generate_range(init, seed, index, shape, start, stop, stream, out)
    if out is not None and got is not out:
        out[...] = got
        return out
    return got


def _generate_range(init, seed, index, shape, start, stop, stream, out) -> np.ndarray:
    from connpack.specs import InitSpec

    if not isinstance(init, InitSpec):
        raise SpecError(f"generate: init must be an InitSpec, got {type(init).__name__}")
    seed, index, stream, shape = _check_args(seed, index, stream, shape)
    n = math.prod(shape)
    start, stop = _check_count(start, "start"), _check_count(stop, "stop")
    if not start <= stop <= n:
        raise SpecError(f"generate_range: need 0 <= start <= stop <= {n}, got [{start}, {stop})")
    if out is not None and (out.dtype != np.float32 or out.shape != (stop - start,) or not out.flags.c_contiguous):
        raise SpecError(f"generate_range: out must be a contiguous float32 array of {stop - start} elements")
    dist = init.dist
    if dist == "zeros":
        return np.zeros(stop - start, np.float32)  # generate_range copies into ``out``
    if dist == "ones":
        return np.ones(stop - start, np.float32)
    fan_in, fan_out = fans(shape)
    if n == 0:
        return np.zeros(0, np.float32)
    if _C is None:
        out = None  # the reference allocates its own; generate_range copies
    elif out is None:
        out = np.empty(stop - start, np.float32)
    scale, gain = float(init.scale), float(init.gain)
    if dist == "signed_constant":
        mag = (scale * gain) / math.sqrt(fan_in)
        # u < p  <=>  (w >> 8) < ceil(p * 2**24) (u = (w >> 8) * 2**-24 and p * 2**24 are exact), and
        # float32(+-mag) is the one rounding: the same values as the float64 path, without it.
        thr = np.uint32(math.ceil(float(init.p_positive) * 2**24))
        pos, neg = np.float32(mag), np.float32(-mag)
        if out is not None:
            return _cfill(out, _K_SIGNED, seed, index, stream, start, float(pos), float(neg), int(thr))
        return _fused_range(
            start, stop, seed, index, stream, "words", lambda w: np.where((w >> np.uint32(8)) < thr, pos, neg)
        )
    if dist in ("kaiming_normal", "xavier_normal"):
        if dist == "kaiming_normal":
            std = (scale * gain) / math.sqrt(fan_in)
        else:
            std = scale * math.sqrt(2.0 / (fan_in + fan_out))
        if out is not None:
            return _cfill(out, _K_NORMAL, seed, index, stream, start, std)

        def scaled(x):
            x *= std
            return x

        return _fused_range(start, stop, seed, index, stream, "normal", scaled)
    if dist == "kaiming_uniform":
        bound = (scale * gain) * math.sqrt(3.0 / fan_in)
        if out is not None:
            return _cfill(out, _K_KAIMING_UNIFORM, seed, index, stream, start, bound)

        def centred(u):
            u *= 2.0
            u -= 1.0
            u *= bound
            return u

        return _fused_range(start, stop, seed, index, stream, "uniform", centred)
    raise SpecError(f"generate: unknown init '{dist}'")  # pragma: no cover (InitSpec validates)


def scores_uniform(seed: int, index: int, shape, low: float, high: float) -> np.ndarray:
    """high - u * (high - low) in float64 from stream 1 (in (low, high] before the float32 rounding)."""
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SpecError(f"scores_uniform: need finite low < high, got ({low}, {high})")
    seed, index, stream, shape = _check_args(seed, index, STREAM_SCORES, shape)
    width = high - low
    if _C is not None:
        out = np.empty(math.prod(shape), np.float32)
        return _cfill(out, _K_SCORES, seed, index, stream, 0, width, high).reshape(shape)

    def flip(u):
        u *= width
        np.subtract(high, u, out=u)
        return u

    return _fused(shape, seed, index, stream, "uniform", flip)


def tensor_hash(arr) -> str:
    """First 16 hex digits of sha256 over the little-endian bytes of the C-order float32 array."""
    a = np.asarray(arr)
    if a.dtype != np.float32:
        raise SpecError(f"tensor_hash: expected a float32 array, got {a.dtype}")
    a = np.ascontiguousarray(a, dtype="<f4")
    return hashlib.sha256(a).hexdigest()[:16]  # the array's buffer, without a copy
