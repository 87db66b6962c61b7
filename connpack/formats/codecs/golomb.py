"""golomb: run lengths of the majority symbol between minority symbols, as Golomb-Rice codes (parameter 2^k).

Payload: u8 flags (bit 0: the minority symbol is 0, i.e. the bits were inverted; other bits 0),
u8 k (0..32), uvarint m (number of minority symbols), then the remainder stream (m*k bits: the low k bits of
each run, MSB first, packed and zero padded to ceil(m*k/8) bytes), then the unary stream (for each run r:
(r >> k) one bits then a zero bit; packed MSB first, zero padded, to the end of the payload).
Run i is the number of majority symbols before the i-th minority symbol (counted from the previous one);
the majority symbols after the last minority symbol are implied by the shape. Encode and decode are numpy
vector operations only (the two streams are separate so that no codeword boundary has to be found serially).
"""

from __future__ import annotations

import numpy as np

from .._util import CorruptPayloadError, check_bits, check_shape, get_uvarint, numel, put_uvarint, unpack_checked
from connpack.errors import DecodedLengthError

NAME = "golomb"
AUTO_STAGE = 1


def offer(bits: np.ndarray, shape, best: int, small: bool, level: int) -> bytes | None:
    """auto: on large sections only when its exact size (computed without coding) is below ``best`` and a
    lower bound from two counts is 1% below it; on small ones unless that bound or that size is above ``best``
    (its payload could not be the smallest, nor tie)."""
    if small:
        if best is not None and (lower_bound(bits, shape) > best + 1 or size(bits, shape) > best):
            return None
        return encode(bits, shape)
    if lower_bound(bits, shape) < 0.99 * best and size(bits, shape) < best:
        return encode(bits, shape)
    return None


MAX_K = 32


def _choose_k(runs: np.ndarray) -> int:
    m = runs.size
    if m == 0:
        return 0
    mean = float(runs.mean())
    k0 = max(0, int(np.log2(max(mean * 0.6931, 1.0))))
    best = None
    for k in range(max(0, k0 - 2), min(MAX_K, k0 + 3) + 1):
        cost = int((runs >> k).sum()) + m * (1 + k)
        if best is None or cost < best[0]:
            best = (cost, k)
    return best[1]


def _runs(flat: np.ndarray) -> tuple[bool, np.ndarray]:
    """(invert, run lengths of the majority symbol before each minority symbol)."""
    invert = int(np.count_nonzero(flat)) * 2 > flat.size
    pos = np.flatnonzero(~flat if invert else flat).astype(np.int64)
    return invert, np.diff(pos, prepend=-1) - 1


def size(bits: np.ndarray, shape) -> int:
    """The exact length of ``encode(bits, shape)`` in bytes, without building the payload."""
    flat, _ = check_bits(bits, shape)
    _, runs = _runs(flat)
    m = runs.size
    k = _choose_k(runs)
    unary = int((runs >> k).sum()) + m
    return 2 + len(put_uvarint(m)) + (m * k + 7) // 8 + (unary + 7) // 8


def _last_minority(flat: np.ndarray, invert: bool) -> int:
    """Index of the last element that is not ``invert`` (there is one), looking back from the end in
    growing pieces: usually near the end, so the whole array is rarely read."""
    end, step = flat.size, 4096
    while True:
        start = max(0, end - step)
        hits = np.flatnonzero(flat[start:end] != invert)
        if hits.size:
            return start + int(hits[-1])
        end, step = start, step * 4


def lower_bound(bits: np.ndarray, shape) -> float:
    """A lower bound on ``size(bits, shape)`` in bytes from two counts (no run lengths needed).

    With m minority symbols and T = sum of the runs (majority symbols before the last minority one), the code
    costs m(1+k) + sum floor(r_i / 2^k) >= m(1+k) + T/2^k - m(1 - 2^-k) bits for parameter k.
    """
    flat, _ = check_bits(bits, shape)
    n = flat.size
    ones = int(np.count_nonzero(flat))
    invert = ones * 2 > n
    m = n - ones if invert else ones
    if m == 0:
        return 3.0
    last = _last_minority(flat, invert)
    t = last + 1 - m
    k = np.arange(MAX_K + 1, dtype=np.float64)
    return 3.0 + float(np.min(m * (1 + k) + np.maximum(0.0, t / 2.0**k - m * (1 - 2.0**-k)))) / 8


def encode(bits: np.ndarray, shape, k: int | None = None) -> bytes:
    flat, shp = check_bits(bits, shape)
    invert, runs = _runs(flat)
    m = runs.size
    if k is None:
        k = _choose_k(runs)
    if not 0 <= k <= MAX_K:
        raise ValueError("golomb k out of range")
    head = bytes([1 if invert else 0, k]) + put_uvarint(m)
    if k:
        shifts = np.arange(k - 1, -1, -1, dtype=np.int64)
        rem = ((runs[:, None] >> shifts) & 1).astype(bool).ravel()
        rem_bytes = np.packbits(rem).tobytes()
    else:
        rem_bytes = b""
    q = runs >> k
    term = np.cumsum(q + 1) - 1
    unary = np.ones(int(term[-1]) + 1 if m else 0, dtype=bool)
    unary[term] = False
    return head + rem_bytes + np.packbits(unary).tobytes()


def decode(payload: bytes, shape) -> np.ndarray:
    shp = check_shape(shape)
    n = numel(shp)
    if len(payload) < 3:
        raise CorruptPayloadError("golomb payload shorter than its parameters")
    flags, k = payload[0], payload[1]
    if flags > 1 or k > MAX_K:
        raise CorruptPayloadError(f"golomb flags {flags} / k {k} invalid")
    m, pos = get_uvarint(payload, 2, limit=n)
    if flags and m * 2 >= n and n:
        # canonical writers invert only when ones are the strict majority, so zeros are then < n/2
        raise CorruptPayloadError("golomb inverted payload with a majority count")
    rem_len = (m * k + 7) // 8
    if pos + rem_len > len(payload):
        raise DecodedLengthError("golomb remainder stream truncated")
    rem_bits = unpack_checked(np.frombuffer(payload, dtype=np.uint8, count=rem_len, offset=pos), m * k)
    unary_buf = np.frombuffer(payload, dtype=np.uint8, offset=pos + rem_len)
    unary = np.unpackbits(unary_buf)
    zeros = np.flatnonzero(~unary.astype(bool))
    if zeros.size < m:
        raise DecodedLengthError(f"golomb unary stream holds fewer than {m} runs")
    end = int(zeros[m - 1]) + 1 if m else 0
    if unary.size - end >= 8 or unary[end:].any():
        raise CorruptPayloadError("golomb unary stream has bad padding")
    term = zeros[:m].astype(np.int64)
    q = np.diff(term, prepend=-1) - 1
    if m and int(q.max()) > (n >> k):
        raise DecodedLengthError("golomb run longer than the section")
    runs = q << k
    if k:
        w = np.int64(1) << np.arange(k - 1, -1, -1, dtype=np.int64)
        runs = runs + rem_bits.reshape(m, k).astype(np.int64) @ w
    if m and int(runs.max()) >= n:
        raise DecodedLengthError("golomb run longer than the section")
    positions = np.cumsum(runs + 1) - 1
    if m and int(positions[-1]) >= n:
        raise DecodedLengthError(f"golomb runs cover more than the {n} declared elements")
    out = np.zeros(n, dtype=bool)
    out[positions] = True
    if flags:
        np.logical_not(out, out=out)
    return out.reshape(shp)
