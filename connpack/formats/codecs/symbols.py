"""Order-0 two-pass ANS coding of a sequence of integers (the "symbol stream" of cpk.md 5.1).

Stream: svarint lo (zigzag LEB128), uvarint N - 1 (alphabet size N <= 65536), N uvarint counts (symbol
lo + i occurs counts[i] times; they sum to the number of elements n), then, when N > 1, an ANS stream
(cpk.md 4) of the n symbols x - lo, each with the table quantise(counts, n). An empty sequence is an
empty stream. The counts are checked after decoding.
"""

from __future__ import annotations

import numpy as np

from .._util import (
    CorruptPayloadError,
    ans_decode,
    ans_decoder,
    ans_finish,
    ans_words_to_bytes,
    entropy_model,
    get_uvarint,
    put_uvarint,
    quantise,
)

MAX_ALPHABET = 1 << 16
INT32 = (-(1 << 31), (1 << 31) - 1)


def put_svarint(x: int) -> bytes:
    return put_uvarint((x << 1) ^ -1 if x < 0 else x << 1)


def get_svarint(buf: bytes, pos: int) -> tuple[int, int]:
    z, pos = get_uvarint(buf, pos, limit=(1 << 32) - 1)
    return (-(z >> 1) - 1 if z & 1 else z >> 1), pos


def fits(x: np.ndarray) -> bool:
    """Whether the integers ``x`` can be coded (within int32, alphabet of at most MAX_ALPHABET)."""
    return x.size == 0 or (
        int(x.min()) >= INT32[0] and int(x.max()) <= INT32[1] and int(x.max()) - int(x.min()) < MAX_ALPHABET
    )


def encode(x: np.ndarray) -> bytes:
    import constriction

    x = np.asarray(x, dtype=np.int64).ravel()
    if x.size == 0:
        return b""
    if not fits(x):
        raise ValueError("integers outside int32 or an alphabet above 65536 symbols")
    lo = int(x.min())
    sym = (x - lo).astype(np.int32)
    counts = np.bincount(sym)
    out = bytearray(put_svarint(lo) + put_uvarint(counts.size - 1))
    for c in counts.tolist():
        out += put_uvarint(c)
    if counts.size == 1:
        return bytes(out)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(sym, entropy_model(quantise(counts.tolist(), x.size)))
    return bytes(out) + ans_words_to_bytes(coder.get_compressed())


def decode(buf: bytes, n: int, lo_min: int = INT32[0], hi_max: int = INT32[1]) -> np.ndarray:
    """The ``n`` integers in the stream ``buf`` (all of it), each in [lo_min, hi_max] (int64)."""
    if n == 0:
        if buf:
            raise CorruptPayloadError("symbol stream for no elements is not empty")
        return np.zeros(0, dtype=np.int64)
    lo, pos = get_svarint(buf, 0)
    size, pos = get_uvarint(buf, pos, limit=MAX_ALPHABET - 1)
    size += 1
    if lo < lo_min or lo + size - 1 > hi_max:
        raise CorruptPayloadError(f"symbol range [{lo}, {lo + size - 1}] outside [{lo_min}, {hi_max}]")
    counts = []
    for _ in range(size):
        c, pos = get_uvarint(buf, pos, limit=n)
        counts.append(c)
    if sum(counts) != n:
        raise CorruptPayloadError(f"symbol counts sum to {sum(counts)}, the section has {n} elements")
    if size == 1:
        if pos != len(buf):
            raise CorruptPayloadError("data after a one-symbol stream")
        return np.full(n, lo, dtype=np.int64)
    coder = ans_decoder(buf[pos:])
    sym = ans_decode(coder, entropy_model(quantise(counts, n)), n, np.int32).astype(np.int64)
    ans_finish(coder)
    if np.bincount(sym, minlength=size).tolist() != counts:
        raise CorruptPayloadError("decoded symbols do not have the declared counts")
    return sym + lo
