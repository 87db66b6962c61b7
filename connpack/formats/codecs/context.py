"""context: a block model of a 2-D view of the bits. Every row gets a class, every column gets a class, and
every (row class, column class) block gets one probability (a stochastic block model, fitted by co-clustering).

View. Shape (d0, ..., d_{r-1}), r >= 2, split axis a (1 <= a <= r-1): a matrix of R = d0*...*d_{a-1} rows and
C = d_a*...*d_{r-1} columns (C order). A 2-D (out, in) mask has one row per output unit and one column per
input unit; a 4-D conv mask (out, in, kh, kw) has, with a = 1, output channels x (input channel, kernel
position), with a = 2 kernels x kernel positions, with a = 3 (out, in, kh) x kw.

Why. Magnitude pruning of a trained network removes whole groups: inputs that carry no signal (MNIST's border
pixels), units that learned little (Paganini & Forde, "On iterative neural network pruning, reinitialization,
and the similarity of masks", sec. 4: IMP masks concentrate on a few input rows/units). The density of a weight
then depends on its output unit and on its input unit. One probability per row (Kc = 1) or per column
(Kr = 1) captures one of the two; the block model captures both, and costs its own description (classes,
levels) in the payload, so it is chosen only when it pays.

Model. P(bit_ij = 1) = m_j / 65536 with j = level[r_i, c_j], row class r_i < Kr = 2^br, column class
c_j < Kc = 2^bc, and m from ``level_table(b)``: level 0 means all zeros, level L-1 = 2^b - 1 all ones
(both cost no bits), interior levels are probabilities denser near 0 and 1.

Payload: u8 a, u8 br (0..6), u8 bc (0..6), u8 b (3..8); if br > 0: Kr uvarints, the number of rows of each
class (summing to R); if bc > 0: Kc uvarints, the columns of each class (summing to C); uvarint ones (the
number of 1 bits, checked after decoding); then one ANS stream (cpk.md 4) that decodes, in this order:
  1. if br > 0, the R row classes, first row first, with frequencies quantise(row counts, R);
  2. if bc > 0, the C column classes with quantise(column counts, C);
  3. the Kr*Kc block levels, row-major, with quantise([1]*L, L) (uniform over L = 2^b);
  4. for each block (r, c) in row-major order whose level j is interior: its bits (the rows of class r in
     increasing order; in each, the columns of class c in increasing order), packed MSB first and zero
     padded, as ceil(n_rc/8) bytes with byte_freqs(m_j).
The decoded classes MUST have the declared counts. Encode and decode are numpy vector operations plus one
loop over the Kr*Kc <= 4096 blocks.
"""

from __future__ import annotations

import math

import numpy as np

from connpack.errors import DecodedLengthError, ShapeMismatchError

from .._util import (
    CorruptPayloadError,
    ans_decode,
    ans_decoder,
    ans_finish,
    ans_words_to_bytes,
    byte_model,
    check_bits,
    check_shape,
    entropy_model,
    get_uvarint,
    numel,
    put_uvarint,
    quantise,
    unpack_checked,
)

NAME = "context"
AUTO_STAGE = 2


def applies(shape) -> bool:
    return len(tuple(shape)) >= 2


def offer(bits: np.ndarray, shape, best: int, small: bool, level: int) -> bytes | None:
    """auto: whenever rows or columns differ in density (``plan`` finds a block model worth trying); on large
    sections only when its estimate is within 2% of ``best``."""
    found = plan(bits, shape)
    if found and (small or found[0][0] / 8 < 1.02 * best):
        return encode(bits, shape, plan=found)
    return None


B_CHOICES = (3, 4, 5, 6, 7, 8)
MAX_CLASS_BITS = 6
CLASS_GRID = (0, 2, 4, 6)  # log2 of the classes per side the encoder tries
ITERATIONS = 6  # co-clustering rounds
MIN_SIDE = 4  # views with fewer rows or columns are not searched


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


def _view(flat: np.ndarray, shp: tuple, a: int) -> np.ndarray:
    return flat.reshape(math.prod(shp[:a]), math.prod(shp[a:]))


# --------------------------------------------------------------------------- fitting (encoder only)
def _group_sum(x: np.ndarray, labels: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Sums of the 2-D integer array ``x`` over the indices of each label along ``axis``."""
    counts = np.bincount(labels, minlength=k)
    shape = list(x.shape)
    shape[axis] = k
    out = np.zeros(shape, dtype=np.int64)
    nz = np.flatnonzero(counts)
    if nz.size and x.size:
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[nz]
        xs = np.take(x, np.argsort(labels, kind="stable"), axis=axis)
        red = np.add.reduceat(xs, starts, axis=axis, dtype=np.int64)
        if axis == 0:
            out[nz] = red
        else:
            out[:, nz] = red
    return out


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for the small class matrices, without BLAS (whose threads spin on a busy machine)."""
    return np.einsum("ij,jk->ik", a, b, optimize=False)


def _quantile_classes(density: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(density, kind="stable")
    cls = np.empty(density.size, dtype=np.int64)
    cls[order] = (np.arange(density.size) * k) // max(density.size, 1)
    return cls


def _log_probs(ones: np.ndarray, n: np.ndarray):
    p = np.clip((ones + 0.5) / (n + 1.0), 2.0**-16, 1 - 2.0**-16)
    return np.log2(p), np.log2(1 - p)


def _block_levels(ones: np.ndarray, n: np.ndarray, b: int) -> tuple[np.ndarray, float]:
    """Cheapest level per block and the bits of all blocks' data (with byte padding)."""
    m = level_table(b)
    p = m[1:-1] / 65536.0
    lp, lq = np.log2(p), np.log2(1.0 - p)
    k, t = ones.reshape(-1, 1).astype(np.float64), n.reshape(-1, 1).astype(np.float64)
    cost = -(k * lp + (t - k) * lq)
    lev = np.argmin(cost, axis=1) + 1
    bits = cost[np.arange(lev.size), lev - 1] + 7.0  # ~half a padding byte on average, rounded up
    zero, full = ones.ravel() == 0, ones.ravel() == n.ravel()
    lev = np.where(zero, 0, np.where(full, (1 << b) - 1, lev))
    bits = np.where(zero | full, 0.0, bits)
    return lev.reshape(ones.shape), float(bits.sum())


def _labels_bits(counts: np.ndarray) -> float:
    """Order-0 cost of the class labels plus their count table (uvarints, ~2 bytes each)."""
    total = counts.sum()
    c = counts[counts > 0].astype(np.float64)
    return float(-(c * np.log2(c / total)).sum()) + 16.0 * counts.size


def _fit(m8: np.ndarray, br: int, bc: int):
    """Co-cluster rows and columns (alternating cheapest-class assignments); returns (rc, cc, est. bits, b, lev)."""
    R, C = m8.shape
    kr, kc = 1 << br, 1 << bc
    rc = _quantile_classes(m8.sum(axis=1), kr) if kr > 1 else np.zeros(R, dtype=np.int64)
    cc = _quantile_classes(m8.sum(axis=0), kc) if kc > 1 else np.zeros(C, dtype=np.int64)
    for _ in range(ITERATIONS if kr * kc > 1 else 0):
        changed = False
        if kr > 1:
            g = _group_sum(m8, cc, kc, axis=1)  # (R, Kc) ones of each row in each column class
            ncol = np.bincount(cc, minlength=kc)
            gf = g.astype(np.float64)
            lp, lq = _log_probs(_group_sum(g, rc, kr, axis=0), np.outer(np.bincount(rc, minlength=kr), ncol))
            new = np.argmin(-(_mul(gf, (lp - lq).T) + ncol @ lq.T), axis=1)
            changed |= not np.array_equal(new, rc)
            rc = new
        if kc > 1:
            h = _group_sum(m8, rc, kr, axis=0)  # (Kr, C) ones of each column in each row class
            nrow = np.bincount(rc, minlength=kr)
            hf = h.T.astype(np.float64)
            lp, lq = _log_probs(_group_sum(h, cc, kc, axis=1), np.outer(nrow, np.bincount(cc, minlength=kc)))
            new = np.argmin(-(_mul(hf, lp - lq) + nrow @ lq), axis=1)
            changed |= not np.array_equal(new, cc)
            cc = new
        if not changed:
            break
    ones = _group_sum(_group_sum(m8, cc, kc, axis=1), rc, kr, axis=0)
    n = np.outer(np.bincount(rc, minlength=kr), np.bincount(cc, minlength=kc))
    side = (
        (_labels_bits(np.bincount(rc, minlength=kr)) if kr > 1 else 0.0)
        + (_labels_bits(np.bincount(cc, minlength=kc)) if kc > 1 else 0.0)
        + 64.0
    )
    best = None
    for b in B_CHOICES:
        lev, data = _block_levels(ones, n, b)
        total = data + side + kr * kc * b
        if best is None or total < best[2]:
            best = (rc, cc, total, b, lev)
    return best


def _enumerative_bits(k: np.ndarray, t: int) -> float:
    """Bits of coding each of len(k) groups of t bits by its count (log2(t+1)) and its index among the
    C(t, count) arrangements: an achievable code, so a fair test of whether per-group densities pay."""
    log2_fact = np.concatenate(([0.0], np.cumsum(np.log2(np.arange(1, t + 1, dtype=np.float64)))))
    per_count = log2_fact[t] - log2_fact - log2_fact[::-1]  # log2 C(t, c) for c = 0..t; k may be any unsigned type
    return float(per_count[k].sum()) + k.size * np.log2(t + 1)


def _group_sums(x: np.ndarray, width: int, most: int) -> tuple[np.ndarray, int]:
    """(sums of consecutive groups of ``width`` elements of the 1-D array ``x`` of integers 0..``most``, the
    largest sum possible), in the narrowest unsigned type that holds it; narrow groups as ``width`` vector adds
    (numpy reduces a short inner axis row by row, slowly)."""
    top = most * width
    acc = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)
    v = x.reshape(-1, width)
    if width > 16:
        return v.sum(axis=1, dtype=acc), top
    if width == 1:
        return v[:, 0].astype(acc), top
    out = np.add(v[:, 0], v[:, 1], dtype=acc)
    for j in range(2, width):
        out += v[:, j]
    return out, top


def _view_sums(m8: np.ndarray, shp: tuple) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{a: (row sums, column sums) of _view(m8, shp, a)} for a = 1..len(shp)-1, from one pass over
    the finest rows and one over the coarsest columns: the other views' sums are sums of those."""
    d = len(shp)
    rows, top = {}, 1
    x = m8.ravel()
    for a in range(d - 1, 0, -1):
        x, top = _group_sums(x, shp[a], top)
        rows[a] = x
    cols = {1: m8.reshape(shp[0], -1).sum(axis=0, dtype=np.uint32).astype(np.int64)}
    for a in range(2, d):
        cols[a] = cols[a - 1].reshape(shp[a - 1], -1).sum(axis=0)
    return {a: (rows[a], cols[a]) for a in range(1, d)}


def _marginal_gain(row_sums: np.ndarray, col_sums: np.ndarray) -> float:
    """Cost of one density per row, or per column (enumerative code), over the order-0 cost (>= 1: none pays)."""
    R, C = row_sums.size, col_sums.size
    ones = int(row_sums.sum())
    if ones in (0, R * C):
        return 1.0
    p = ones / (R * C)
    order0 = R * C * -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    rows = _enumerative_bits(row_sums, C)
    cols = _enumerative_bits(col_sums, R)
    return min(rows, cols) / order0


def _candidates(flat: np.ndarray, shp: tuple):
    """(estimated bits, a, br, bc, b, rc, cc, lev) for the promising split axes and class counts."""
    out = []
    views = [a for a in range(1, len(shp)) if min(math.prod(shp[:a]), math.prod(shp[a:])) >= MIN_SIDE]
    sums = _view_sums(flat.view(np.uint8), shp) if views else {}  # too few rows or columns: classes cannot pay
    for a in views:
        v = _view(flat, shp, a)
        R, C = v.shape
        m8 = v.view(np.uint8)
        if _marginal_gain(*sums[a]) > 0.99:
            continue  # neither rows nor columns differ in density: the order-0 coders are as good
        fits = {}

        def fit(br, bc):
            if (br, bc) not in fits and (1 << br) <= R and (1 << bc) <= C:
                fits[br, bc] = _fit(m8, br, bc)
            return fits.get((br, bc))

        # one side at a time, then both sides around the best one-sided class counts
        for bits in CLASS_GRID:
            fit(bits, 0)
            fit(0, bits)
        br = min((f[2], k[0]) for k, f in fits.items() if k[1] == 0)[1]
        bc = min((f[2], k[1]) for k, f in fits.items() if k[0] == 0)[1]
        if br and bc:
            for dr, dc in ((0, 0), (-2, 0), (0, -2)):
                fit(max(br + dr, 2), max(bc + dc, 2))
        out += [(f[2], a, k[0], k[1], f[3], f[0], f[1], f[4]) for k, f in fits.items()]
    out.sort(key=lambda t: t[:4])
    return out


def plan(bits: np.ndarray, shape) -> list:
    """The fitted block models worth trying, cheapest estimate first; [] when rows and columns look alike.

    Entries are (estimated payload bits, a, br, bc, b, row classes, column classes, levels); pass the list to
    ``encode(..., plan=...)`` to code without fitting again.
    """
    flat, shp = check_bits(bits, shape)
    return _candidates(flat, shp) if len(shp) >= 2 else []


# --------------------------------------------------------------------------- coding
def _members(labels: np.ndarray, k: int) -> list[np.ndarray]:
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(k)]


def _encode_with(flat, shp, a, br, bc, b, rc, cc, lev) -> bytes:
    import constriction

    v = _view(flat, shp, a)
    R, C = v.shape
    kr, kc, L = 1 << br, 1 << bc, 1 << b
    m = level_table(b)
    rcount, ccount = np.bincount(rc, minlength=kr), np.bincount(cc, minlength=kc)
    rows, cols = _members(rc, kr), _members(cc, kc)
    coder = constriction.stream.stack.AnsCoder()
    for r in range(kr - 1, -1, -1):  # the stack decodes in reverse push order
        for c in range(kc - 1, -1, -1):
            j = int(lev[r, c])
            if 0 < j < L - 1 and rows[r].size and cols[c].size:
                coder.encode_reverse(np.packbits(v[np.ix_(rows[r], cols[c])]).astype(np.int32), byte_model(int(m[j])))
    coder.encode_reverse(lev.ravel().astype(np.int32), entropy_model(quantise([1] * L, L)))
    if kc > 1:
        coder.encode_reverse(cc.astype(np.int32), entropy_model(quantise(list(ccount), C)))
    if kr > 1:
        coder.encode_reverse(rc.astype(np.int32), entropy_model(quantise(list(rcount), R)))
    head = bytes([a, br, bc, b])
    head += b"".join(put_uvarint(int(x)) for x in rcount) if kr > 1 else b""
    head += b"".join(put_uvarint(int(x)) for x in ccount) if kc > 1 else b""
    return head + put_uvarint(int(np.count_nonzero(flat))) + ans_words_to_bytes(coder.get_compressed())


def encode(bits: np.ndarray, shape, model: tuple[int, int, int] | None = None, plan: list | None = None) -> bytes:
    """Encode with ``model`` = (split axis a, br, bc), or search (or take ``plan``) and keep the smaller of the
    two best fits."""
    flat, shp = check_bits(bits, shape)
    if len(shp) < 2:
        raise ShapeMismatchError("the context codec needs an array of 2 or more dimensions")
    if model is not None:
        a, br, bc = model
        if not 1 <= a < len(shp) or not (0 <= br <= MAX_CLASS_BITS and 0 <= bc <= MAX_CLASS_BITS):
            raise ShapeMismatchError(f"context model {model} invalid for shape {shp}")
        v = _view(flat, shp, a)
        if v.size == 0:
            br = bc = 0
        rc, cc, _, b, lev = _fit(v.view(np.uint8), br, bc)
        return _encode_with(flat, shp, a, br, bc, b, rc, cc, lev)
    cands = _candidates(flat, shp) if plan is None else plan
    if not cands:  # no structure (or an empty view): the one-block model, i.e. order 0 on the first view
        return encode(bits, shp, (1, 0, 0))
    outs = [_encode_with(flat, shp, *c[1:]) for c in cands[:2]]
    return min(outs, key=lambda x: (len(x), x))


def _read_counts(payload: bytes, pos: int, k: int, total: int) -> tuple[list[int], int]:
    counts = []
    for _ in range(k):
        c, pos = get_uvarint(payload, pos, limit=total)
        counts.append(c)
    if sum(counts) != total:
        raise CorruptPayloadError(f"context class counts sum to {sum(counts)}, the view has {total}")
    return counts, pos


def _decode_classes(coder, counts: list[int], n: int) -> np.ndarray:
    k = len(counts)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    got = ans_decode(coder, entropy_model(quantise(counts, n)), n).astype(np.int64) if n else np.zeros(0, np.int64)
    if not np.array_equal(np.bincount(got, minlength=k)[:k], counts) or (got.size and got.max() >= k):
        raise CorruptPayloadError("context classes do not match their declared counts")
    return got


def decode(payload: bytes, shape) -> np.ndarray:
    shp = check_shape(shape)
    n = numel(shp)
    if len(payload) < 4:
        raise CorruptPayloadError("context payload shorter than its parameters")
    a, br, bc, b = payload[0], payload[1], payload[2], payload[3]
    if len(shp) < 2 or not 1 <= a < len(shp):
        raise ShapeMismatchError(f"context split axis {a} invalid for shape {shp}")
    if b not in B_CHOICES or br > MAX_CLASS_BITS or bc > MAX_CLASS_BITS:
        raise CorruptPayloadError(f"context parameters br={br} bc={bc} b={b} invalid")
    R, C = math.prod(shp[:a]), math.prod(shp[a:])
    kr, kc, L = 1 << br, 1 << bc, 1 << b
    pos = 4
    rcount, pos = _read_counts(payload, pos, kr, R) if kr > 1 else ([R], pos)
    ccount, pos = _read_counts(payload, pos, kc, C) if kc > 1 else ([C], pos)
    ones, pos = get_uvarint(payload, pos, limit=n)
    coder = ans_decoder(payload[pos:])
    rc = _decode_classes(coder, rcount, R)
    cc = _decode_classes(coder, ccount, C)
    lev = ans_decode(coder, entropy_model(quantise([1] * L, L)), kr * kc).astype(np.int64).reshape(kr, kc)
    if lev.min() < 0 or lev.max() >= L:
        raise CorruptPayloadError("context level out of range")
    m = level_table(b)
    rows, cols = _members(rc, kr), _members(cc, kc)
    out = np.zeros((R, C), dtype=bool)
    for r in range(kr):
        for c in range(kc):
            j = int(lev[r, c])
            if j == 0 or not rows[r].size or not cols[c].size:
                continue
            if j == L - 1:
                out[np.ix_(rows[r], cols[c])] = True
                continue
            nb = rows[r].size * cols[c].size
            syms = ans_decode(coder, byte_model(int(m[j])), (nb + 7) // 8)
            out[np.ix_(rows[r], cols[c])] = unpack_checked(syms.astype(np.uint8), nb).reshape(rows[r].size, -1)
    ans_finish(coder)
    if int(np.count_nonzero(out)) != ones:
        raise DecodedLengthError(f"context section decoded {int(np.count_nonzero(out))} ones, declared {ones}")
    return out.reshape(shp)
