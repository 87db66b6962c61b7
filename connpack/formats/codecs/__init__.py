"""Bit-section codecs: each a pure pair ``encode(bits, shape) -> bytes`` / ``decode(payload, shape) -> bool array``,
plus what ``auto`` asks of it: ``AUTO_STAGE`` and ``offer(bits, shape, best, small, level)`` (optional
``applies(shape)``). Adding a codec = one module + one entry in CODECS (+ cpk.md and a golden vector)."""

from __future__ import annotations

from . import ans, context, golomb, planes, qans, raw, zstd

#: name -> codec module, for bool (bit) sections. Numeric sections use "raw" and "zstd" (see container) and
#: the VALUE_CODECS.
CODECS = {m.NAME: m for m in (raw, zstd, golomb, ans, context)}

#: name -> codec module for numeric sections beyond raw/zstd: ``DTYPES`` (header dtype codes it codes),
#: ``applies(arr)``, ``encode(arr) -> bytes``, ``decode(payload, dtype, shape) -> array``. The writer uses one
#: only where the Container asks for it (Container.codecs), so files written before keep their bytes.
VALUE_CODECS = {m.NAME: m for m in (planes, qans)}


def applicable(shape) -> list[str]:
    """Codec names that can code a bool array of this shape."""
    return [n for n, m in CODECS.items() if getattr(m, "applies", lambda s: True)(shape)]


__all__ = ["CODECS", "VALUE_CODECS", "applicable", "raw", "zstd", "golomb", "ans", "context"]
