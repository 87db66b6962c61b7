"""raw: the bits packed 8 to a byte, most significant bit first, in C order; the last byte padded with 0."""

from __future__ import annotations

import numpy as np

from connpack.errors import DecodedLengthError

from .._util import check_bits, check_shape, numel, unpack_checked

NAME = "raw"

# auto (formats.container): stages run in order, codecs of one stage in CODECS order; ``offer`` gives the
# payload, or None when a cheap test says it cannot beat ``best`` (the smallest payload offered so far).
AUTO_STAGE = 0


def offer(bits: np.ndarray, shape, best: int | None, small: bool, level: int) -> bytes | None:
    return encode(bits, shape)


def encode(bits: np.ndarray, shape) -> bytes:
    flat, _ = check_bits(bits, shape)
    return np.packbits(flat).tobytes()


def decode(payload: bytes, shape) -> np.ndarray:
    shp = check_shape(shape)
    n = numel(shp)
    if len(payload) != (n + 7) // 8:
        raise DecodedLengthError(f"raw section has {len(payload)} bytes, shape {shp} needs {(n + 7) // 8}")
    return unpack_checked(np.frombuffer(payload, dtype=np.uint8), n).reshape(shp)
