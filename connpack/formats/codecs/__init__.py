"""Bit-section codecs: each a pure pair ``encode(bits, shape) -> bytes`` / ``decode(payload, shape) -> bool array``."""
from __future__ import annotations

from . import ans, context, golomb, raw, zstd

#: name -> codec module, for bool (bit) sections. Numeric sections use only "raw" and "zstd" (see container).
CODECS = {m.NAME: m for m in (raw, zstd, golomb, ans, context)}


def applicable(shape) -> list[str]:
    """Codec names that can code a bool array of this shape."""
    return [n for n in CODECS if n != "context" or len(tuple(shape)) >= 2]


__all__ = ["CODECS", "applicable", "raw", "zstd", "golomb", "ans", "context"]
