"""zstd: the raw packing (MSB first, zero padded) compressed as one zstd frame that declares its content size."""

from __future__ import annotations

import numpy as np

from .._util import check_bits, check_shape, numel, unpack_checked, zstd_compress, zstd_decompress_exact

NAME = "zstd"
DEFAULT_LEVEL = 19
PROBE_LEVEL = 3  # a fast pass that tells whether the full-strength one can pay off
AUTO_STAGE = 3


def offer(bits: np.ndarray, shape, best: int, small: bool, level: int) -> bytes | None:
    """auto: a level-3 pass, and the full ``level`` when that pass is already below ``best`` (always on small
    sections); the smaller of the two."""
    probe = encode(bits, shape, level=PROBE_LEVEL)
    if small or len(probe) < best:
        full = encode(bits, shape, level=level)
        probe = full if len(full) <= len(probe) else probe
    return probe


def encode(bits: np.ndarray, shape, level: int = DEFAULT_LEVEL) -> bytes:
    flat, _ = check_bits(bits, shape)
    return zstd_compress(np.packbits(flat).tobytes(), level)


def decode(payload: bytes, shape) -> np.ndarray:
    shp = check_shape(shape)
    n = numel(shp)
    raw = zstd_decompress_exact(payload, (n + 7) // 8)
    return unpack_checked(np.frombuffer(raw, dtype=np.uint8), n).reshape(shp)
