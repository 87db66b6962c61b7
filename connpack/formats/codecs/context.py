"""context: a two-level model: one quantised probability per row (or per column) of a 2-D view of the array.

The array of shape (d0, ..., d_{r-1}), r >= 2, is viewed in C order as a matrix of R = d0*...*d_{a-1} rows and
C = d_a*...*d_{r-1} columns (split axis a, 1 <= a <= r-1). In "row" orientation each row gets a level; in
"col" orientation the matrix is transposed first (each column of the view gets a level and its bits are read
top to bottom). For a 4-D conv mask (out, in, kh, kw), a = 2 / row is one probability per kernel, a = 1 / row
one per output unit, a = 1 / col one per (in, kh, kw) input position; for a 2-D (out, in) mask, row is per
output unit and col per input unit.

Levels: L = 2^b levels (2 <= b <= 8). Level 0 means p = 0 (the row is all zeros, costs nothing), level L-1
means p = 1 (all ones). Interior levels j = 1..L-2 have P(1) = m_j / 65536 with integer m_j given by
``level_table(b)`` (symmetric, denser near 0 and 1).

Payload: u8 variant = (a << 1) | orient (orient 0 = row, 1 = col); u8 b; u8 index model (0: uniform over the
L levels; 1: a static histogram follows); if 1: uvarint s (distinct levels, 1..L), then s pairs (u8 level,
strictly increasing; uvarint count >= 1), counts summing to the number of rows; then uvarint ones (the total
number of 1 bits, checked after decoding); then one ANS stream (u32 LE
words) that decodes, in order: the level of every row (first row first, with the categorical model over the
L levels: uniform or the histogram counts as float64 count/total), then for each interior level j = 1..L-2
in increasing order, the bytes of the group of rows at level j (their bits concatenated in row order, packed
MSB first, zero padded to whole bytes) with ``byte_table(m_j)``. Rows at levels 0 and L-1 are not coded.
"""
from __future__ import annotations

import math

import numpy as np

from connpack.errors import DecodedLengthError, ShapeMismatchError

from .._util import (CorruptPayloadError, ans_decode, ans_decoder, ans_finish, ans_words_to_bytes, byte_model,
                     categorical, check_bits, check_shape, get_uvarint, numel, put_uvarint, unpack_checked)

NAME = "context"
B_CHOICES = (3, 4, 5, 6, 7, 8)


def level_table(b: int) -> np.ndarray:
    """Integer m_j (P(1) = m_j/65536) for j = 0..2^b-1; m_0 = 0, m_{L-1} = 65536.

    Interior j = 1..M (M = L-2): s = 2j - M - 1, d = M - |s|, v = max(1, (32768*d*d) // (M*M));
    m_j = v if s < 0 else 65536 - v.
    """
    L = 1 << b
    M = L - 2
    m = np.zeros(L, dtype=np.int64)
    m[L - 1] = 65536
    for j in range(1, M + 1):
        s = 2 * j - M - 1
        d = M - abs(s)
        v = max(1, (32768 * d * d) // (M * M))
        m[j] = v if s < 0 else 65536 - v
    return m


def _view(shp, a: int, orient: int) -> tuple[int, int]:
    R, C = math.prod(shp[:a]), math.prod(shp[a:])
    return (C, R) if orient else (R, C)


def _row_levels(k: np.ndarray, C: int, b: int) -> tuple[np.ndarray, float]:
    """Best level per row given the row counts k (ones out of C); returns (levels, bits for the rows)."""
    m = level_table(b)
    p = m[1:-1] / 65536.0
    lp, lq = np.log2(p), np.log2(1.0 - p)
    kf = k.astype(np.float64)[:, None]
    cost = -(kf * lp + (C - kf) * lq)  # (R, M)
    # coding whole bytes per group costs <= 1 byte per level; ignore here
    lev = np.argmin(cost, axis=1) + 1
    best = cost[np.arange(k.size), lev - 1]
    zero = k == 0
    full = k == C
    lev = np.where(zero, 0, np.where(full, (1 << b) - 1, lev))
    best = np.where(zero | full, 0.0, best)
    return lev.astype(np.int64), float(best.sum())


def _index_cost(lev: np.ndarray, b: int) -> tuple[int, float, bytes]:
    """Cheaper of the two index models: (model id, bits, histogram bytes)."""
    R = lev.size
    uniform = R * b
    vals, counts = np.unique(lev, return_counts=True)
    hist = put_uvarint(vals.size) + b"".join(bytes([int(v)]) + put_uvarint(int(c)) for v, c in zip(vals, counts))
    h = -(counts * np.log2(counts / R)).sum() + 8 * len(hist)
    return (1, float(h), hist) if h < uniform else (0, float(uniform), b"")


def _plan(flat2: np.ndarray):
    R, C = flat2.shape
    k = np.count_nonzero(flat2, axis=1)
    best = None
    for b in B_CHOICES:
        lev, bits = _row_levels(k, C, b)
        im, ibits, hist = _index_cost(lev, b)
        tot = bits + ibits + 8 * len(np.unique(lev))  # rough group padding
        if best is None or tot < best[0]:
            best = (tot, b, lev, im, hist)
    return best


def estimate(bits: np.ndarray, shape) -> list[tuple[float, int, int]]:
    """Estimated payload bits per variant (a, orient), cheapest first."""
    flat, shp = check_bits(bits, shape)
    out = []
    for a in range(1, len(shp)):
        for orient in (0, 1):
            R, C = _view(shp, a, orient)
            if R * C == 0:
                continue
            v = flat.reshape(math.prod(shp[:a]), math.prod(shp[a:]))
            if orient:
                v = v.T
            out.append((_plan(v)[0], a, orient))
    out.sort()
    return out


def encode(bits: np.ndarray, shape, variant: tuple[int, int] | None = None) -> bytes:
    """Encode with the given (split axis, orientation), or try every variant and keep the smallest payload."""
    import constriction

    flat, shp = check_bits(bits, shape)
    if len(shp) < 2:
        raise ShapeMismatchError("the context codec needs an array of 2 or more dimensions")
    if variant is None:
        cands = estimate(bits, shp)
        if not cands:
            variant = (1, 0)
        else:
            outs = [encode(bits, shp, (a, o)) for _, a, o in cands[:2]]
            return min(outs, key=lambda x: (len(x), x))
    a, orient = variant
    if not 1 <= a < len(shp) or orient not in (0, 1):
        raise ShapeMismatchError(f"context variant {variant} invalid for shape {shp}")
    v = flat.reshape(math.prod(shp[:a]), math.prod(shp[a:]))
    if orient:
        v = v.T
    R, C = v.shape
    if R * C == 0:
        b, lev, im, hist = 3, np.zeros(R, dtype=np.int64), 0, b""
    else:
        _, b, lev, im, hist = _plan(v)
    L = 1 << b
    m = level_table(b)
    coder = constriction.stream.stack.AnsCoder()
    order = np.argsort(lev, kind="stable")
    sl = lev[order]
    for j in range(L - 2, 0, -1):
        lo, hi = np.searchsorted(sl, j), np.searchsorted(sl, j, side="right")
        if hi > lo:
            grp = v[order[lo:hi]].ravel()
            coder.encode_reverse(np.packbits(grp).astype(np.int32), byte_model(int(m[j])))
    if R:
        coder.encode_reverse(lev.astype(np.int32), _index_model(im, hist, L, R)[0])
    ones = int(np.count_nonzero(v))
    return bytes([(a << 1) | orient, b, im]) + hist + put_uvarint(ones) + ans_words_to_bytes(coder.get_compressed())


def _index_model(im: int, hist: bytes, L: int, R: int, pos: int = 0):
    if im == 0:
        return categorical(np.ones(L)), pos
    s, pos = get_uvarint(hist, pos, limit=L)
    if s < 1:
        raise CorruptPayloadError("context histogram is empty")
    counts = np.zeros(L, dtype=np.float64)
    prev = -1
    total = 0
    for _ in range(s):
        if pos >= len(hist):
            raise CorruptPayloadError("context histogram truncated")
        lv = hist[pos]
        pos += 1
        c, pos = get_uvarint(hist, pos, limit=R)
        if lv <= prev or lv >= L or c < 1:
            raise CorruptPayloadError("context histogram entries invalid")
        prev = lv
        counts[lv] = c
        total += c
    if total != R:
        raise CorruptPayloadError(f"context histogram counts {total} rows, the view has {R}")
    return categorical(counts / R), pos


def decode(payload: bytes, shape) -> np.ndarray:
    shp = check_shape(shape)
    n = numel(shp)
    if len(payload) < 3:
        raise CorruptPayloadError("context payload shorter than its parameters")
    var, b, im = payload[0], payload[1], payload[2]
    a, orient = var >> 1, var & 1
    if len(shp) < 2 or not 1 <= a < len(shp):
        raise ShapeMismatchError(f"context split axis {a} invalid for shape {shp}")
    if b not in B_CHOICES or im > 1:
        raise CorruptPayloadError(f"context parameters b={b} model={im} invalid")
    L = 1 << b
    R, C = _view(shp, a, orient)
    model, pos = _index_model(im, payload, L, R, 3)
    ones, pos = get_uvarint(payload, pos, limit=n)
    coder = ans_decoder(payload[pos:])
    lev = ans_decode(coder, model, R).astype(np.int64) if R else np.zeros(0, dtype=np.int64)
    if R and (lev.min() < 0 or lev.max() >= L):
        raise CorruptPayloadError("context level out of range")
    m = level_table(b)
    out = np.zeros((R, C), dtype=bool)
    out[lev == L - 1] = True
    order = np.argsort(lev, kind="stable")
    sl = lev[order]
    for j in range(1, L - 1):
        lo, hi = int(np.searchsorted(sl, j)), int(np.searchsorted(sl, j, side="right"))
        if hi > lo:
            nb = (hi - lo) * C
            syms = ans_decode(coder, byte_model(int(m[j])), (nb + 7) // 8)
            out[order[lo:hi]] = unpack_checked(syms.astype(np.uint8), nb).reshape(hi - lo, C)
    ans_finish(coder)
    if int(np.count_nonzero(out)) != ones:
        raise DecodedLengthError(f"context section decoded {int(np.count_nonzero(out))} ones, declared {ones}")
    if orient:
        out = out.T
    return np.ascontiguousarray(out).reshape(shp)
