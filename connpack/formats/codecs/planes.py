"""planes: numeric sections split into byte planes, each an order-0 symbol stream (cpk.md 5.2).

Float weights have skewed sign/exponent bytes and near-uniform low mantissa bytes; coding each byte plane
with its own table gets within ~1% of the order-0 entropy of the 16-bit symbols of float16 values (zstd: 15%
above it).
"""

from __future__ import annotations

import numpy as np

from .._util import CorruptPayloadError, check_shape, get_uvarint, numel, put_uvarint
from . import symbols

NAME = "planes"
DTYPES = ("u1", "i1", "i4", "i8", "f2", "f4", "f8", "bf16")


def applies(arr: np.ndarray) -> bool:
    return arr.dtype.kind != "b"


def _planes(arr: np.ndarray) -> np.ndarray:
    """(itemsize, n) bytes; plane 0 is the most significant byte of each element."""
    k = arr.dtype.itemsize
    le = np.ascontiguousarray(arr).reshape(-1).view(np.uint8).reshape(-1, k)
    return le[:, ::-1].T


def encode(arr: np.ndarray) -> bytes:
    streams = [symbols.encode(p) for p in _planes(arr)]
    return b"".join(put_uvarint(len(s)) for s in streams[:-1]) + b"".join(streams)


def decode(payload: bytes, dtype: np.dtype, shape) -> np.ndarray:
    shp = check_shape(shape)
    n, k = numel(shp), dtype.itemsize
    pos, lengths = 0, []
    for _ in range(k - 1):
        length, pos = get_uvarint(payload, pos, limit=len(payload))
        lengths.append(length)
    lengths.append(len(payload) - pos - sum(lengths))
    if lengths[-1] < 0:
        raise CorruptPayloadError("plane lengths exceed the payload")
    le = np.empty((n, k), dtype=np.uint8)
    for j, length in enumerate(lengths):
        le[:, k - 1 - j] = symbols.decode(payload[pos : pos + length], n, 0, 255)
        pos += length
    return le.reshape(-1).view(dtype).reshape(shp).copy()
