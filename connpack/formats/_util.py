"""Shared helpers for the container and its codecs (numpy only; no torch)."""
from __future__ import annotations

import math

import numpy as np

from connpack.errors import DecodedLengthError, ShapeMismatchError, SpecError

MAX_NDIM = 8


class CorruptPayloadError(DecodedLengthError):
    """A section payload whose internal structure is invalid (bad parameter byte, bad padding, junk words).

    A subclass of DecodedLengthError: the payload does not decode to the declared elements.
    """


def check_shape(shape) -> tuple[int, ...]:
    """Validate a shape given to a codec; return it as a tuple of ints."""
    try:
        shp = tuple(shape)
    except TypeError as e:
        raise ShapeMismatchError(f"shape {shape!r} is not a sequence") from e
    if len(shp) > MAX_NDIM:
        raise ShapeMismatchError(f"shape {shp} has more than {MAX_NDIM} dimensions")
    for d in shp:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ShapeMismatchError(f"shape {shp} has an invalid dimension {d!r}")
    return tuple(int(d) for d in shp)


def numel(shape) -> int:
    return math.prod(shape)


def check_bits(bits, shape) -> tuple[np.ndarray, tuple[int, ...]]:
    """Encoder-side check: ``bits`` is a bool array whose size (and shape) matches ``shape``."""
    shp = check_shape(shape)
    arr = np.asarray(bits)
    if arr.dtype != np.bool_:
        raise SpecError(f"bit codecs take dtype bool, got {arr.dtype}")
    if arr.shape != shp:
        raise ShapeMismatchError(f"bits have shape {arr.shape}, declared {shp}")
    return np.ascontiguousarray(arr).reshape(-1), shp


# --------------------------------------------------------------------------- varints
def put_uvarint(x: int) -> bytes:
    if x < 0:
        raise ValueError("uvarint of a negative number")
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def get_uvarint(buf: bytes, pos: int, limit: int = 2**63) -> tuple[int, int]:
    """Read a LEB128 unsigned varint (at most 9 bytes, canonical: no redundant trailing 0x80/0x00 group)."""
    x = 0
    shift = 0
    for i in range(10):
        if pos >= len(buf):
            raise CorruptPayloadError("truncated varint in section payload")
        b = buf[pos]
        pos += 1
        x |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i > 0:
                raise CorruptPayloadError("non-canonical varint in section payload")
            if x > limit:
                raise CorruptPayloadError(f"varint {x} exceeds its limit {limit}")
            return x, pos
        shift += 7
    raise CorruptPayloadError("varint longer than 9 bytes in section payload")


# --------------------------------------------------------------------------- byte tables for ANS
_POPS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)  # (256, 8), MSB first


def byte_table(p16: int) -> np.ndarray:
    """Probability of each byte value when its 8 bits are i.i.d. with P(1) = p16/65536.

    Computed by multiplying, MSB first, 8 float64 factors (p or 1-p), each an exact dyadic number;
    every product is IEEE-754 correctly rounded, so the table is bit-identical on every platform.
    """
    p = p16 / 65536.0
    q = (65536 - p16) / 65536.0
    t = np.ones(256, dtype=np.float64)
    for i in range(8):
        t = t * np.where(_POPS[:, i] == 1, p, q)
    return t


def entropy_bits(n: int, ones: int) -> float:
    """Order-0 bound n*H(ones/n) in bits."""
    if n == 0 or ones == 0 or ones == n:
        return 0.0
    p = ones / n
    return -n * (p * math.log2(p) + (1 - p) * math.log2(1 - p))


# --------------------------------------------------------------------------- zstd with bounded output
def zstd_compress(data: bytes, level: int) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False).compress(data)


def zstd_decompress_exact(payload: bytes, expected: int) -> bytes:
    """Decompress one zstd frame that MUST hold exactly ``expected`` bytes; never allocates much more.

    The frame header must declare its content size (= expected) and a window no larger than needed.
    """
    import zstandard

    try:
        params = zstandard.get_frame_parameters(payload)
    except Exception as e:  # zstandard.ZstdError on junk or truncation
        raise CorruptPayloadError(f"not a zstd frame: {e}") from None
    if params.content_size != expected:
        raise DecodedLengthError(f"zstd frame declares {params.content_size} bytes, section needs {expected}")
    max_window = 1 << max(10, (max(expected, 1) - 1).bit_length())
    if params.window_size > max_window:
        raise CorruptPayloadError(f"zstd window {params.window_size} larger than the section needs")
    dctx = zstandard.ZstdDecompressor(max_window_size=max_window)
    chunks = []
    got = 0
    try:
        with dctx.stream_reader(payload, read_across_frames=False) as r:
            while got <= expected:
                b = r.read(expected + 1 - got)
                if not b:
                    break
                chunks.append(b)
                got += len(b)
    except zstandard.ZstdError as e:
        raise CorruptPayloadError(f"corrupt zstd frame: {e}") from None
    if got != expected:
        raise DecodedLengthError(f"zstd frame decoded to {got} bytes, section needs {expected}")
    return b"".join(chunks)


# --------------------------------------------------------------------------- ANS helpers (constriction)
def ans_words_to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype="<u4").tobytes()


def ans_decoder(buf: bytes):
    """An AnsCoder over the little-endian u32 words in ``buf``."""
    import constriction

    if len(buf) % 4:
        raise CorruptPayloadError("ANS stream length is not a multiple of 4 bytes")
    words = np.frombuffer(buf, dtype="<u4").astype(np.uint32)
    try:
        return constriction.stream.stack.AnsCoder(words)
    except Exception as e:
        raise CorruptPayloadError(f"invalid ANS stream: {e}") from None


def ans_decode(coder, model, count: int) -> np.ndarray:
    try:
        return np.asarray(coder.decode(model, int(count)))
    except Exception as e:
        raise CorruptPayloadError(f"invalid ANS stream: {e}") from None


def ans_finish(coder) -> None:
    if not coder.is_empty():
        raise CorruptPayloadError("ANS stream has data left after the declared elements")


def categorical(probs: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(np.asarray(probs, dtype=np.float64), perfect=False)


_TABLES: dict[int, object] = {}


def byte_model(p16: int):
    m = _TABLES.get(p16)
    if m is None:
        m = categorical(byte_table(p16))
        if len(_TABLES) < 4096:
            _TABLES[p16] = m
    return m


def unpack_checked(packed: np.ndarray, n: int) -> np.ndarray:
    """Unpack MSB-first bytes to ``n`` bools; the padding bits after ``n`` MUST be zero."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=None)
    if bits.size < n or bits.size - n >= 8:
        raise DecodedLengthError(f"{bits.size} bits for {n} elements")
    if bits[n:].any():
        raise CorruptPayloadError("nonzero padding bits")
    return bits[:n].astype(bool)
