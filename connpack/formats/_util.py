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


# --------------------------------------------------------------------------- integer models for ANS
PRECISION = 24  # probabilities are integers out of 2**24 (cpk.md 4, "ANS streams")
TOTAL = 1 << PRECISION
_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1)


def quantise(num: list[int], den: int) -> np.ndarray:
    """Integer frequencies of the exact probabilities num[i]/den: each >= 1, summing to 2**24.

    w_i = 1 + floor((2**24 - n) * num_i / den) in exact integer arithmetic; the remainder
    2**24 - sum(w) (< n) goes to the first symbol with the largest w_i.
    """
    free = TOTAL - len(num)
    w = [1 + (free * int(x)) // den for x in num]
    top = max(range(len(w)), key=lambda i: (w[i], -i))
    w[top] += TOTAL - sum(w)
    return np.array(w, dtype=np.int64)


def byte_freqs(p16: int) -> np.ndarray:
    """Frequencies of the 256 byte values when their 8 bits are i.i.d. with P(1) = p16/65536.

    P(byte b) = p16**k * (65536 - p16)**(8 - k) / 2**128 with k = popcount(b), exactly, then ``quantise``.
    """
    num = [p16 ** int(k) * (65536 - p16) ** (8 - int(k)) for k in _POPCOUNT]
    return quantise(num, 1 << 128)


def entropy_model(freqs: np.ndarray):
    """constriction's Categorical whose fixed-point probabilities are exactly ``freqs`` (sum 2**24).

    constriction's fast quantiser (Categorical(perfect=False)) gives symbol i the left cumulative
    floor(c_i * (2**24 - n) / s) + i, where c_i is the sum of the given floats before i and s their total.
    Given f_i - 1 (integers, so s = 2**24 - n and every step is exact in float64) it yields exactly f_i.
    ``_check_engine`` verifies that on first use, so a constriction that quantises otherwise is refused
    instead of writing or reading other bits.
    """
    import constriction

    _check_engine()
    return constriction.stream.model.Categorical(np.asarray(freqs, dtype=np.float64) - 1.0, perfect=False)


_ENGINE_OK = False
# words of the ANS stream holding bytes 0, 1, 255, 7, 128, 0 with byte_freqs(9000), as cpk.md 4 specifies them
_ENGINE_VECTOR = (9000, (0, 1, 255, 7, 128, 0), (0xDF0C1494, 0x3CA2BC82))


def _check_engine() -> None:
    global _ENGINE_OK
    if _ENGINE_OK:
        return
    import constriction

    p16, syms, words = _ENGINE_VECTOR
    f = byte_freqs(p16)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(
        np.array(syms, dtype=np.int32), constriction.stream.model.Categorical(f.astype(np.float64) - 1.0, perfect=False)
    )
    got = tuple(int(w) for w in coder.get_compressed())
    if got != words:
        from connpack.errors import FormatError

        raise FormatError(
            "the installed constriction codes ANS streams differently from the .cpk spec "
            "(connpack needs constriction 0.4/0.5 semantics); refusing to read or write ans/context"
        )
    _ENGINE_OK = True


_MODELS: dict = {}


def byte_model(p16: int):
    """The ANS model of one byte of 8 i.i.d. bits with P(1) = p16/65536 (cached)."""
    m = _MODELS.get(p16)
    if m is None:
        m = entropy_model(byte_freqs(p16))
        if len(_MODELS) < 4096:
            _MODELS[p16] = m
    return m


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


ZSTD_WINDOWLOG_MAX = 31


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
    # libzstd's largest window is 2**31 (ZSTD_WINDOWLOG_MAX on 64-bit): a larger section has a smaller window
    max_window = 1 << min(ZSTD_WINDOWLOG_MAX, max(10, (max(expected, 1) - 1).bit_length()))
    if params.window_size > max_window:
        raise CorruptPayloadError(f"zstd window {params.window_size} larger than the section needs")
    try:  # libzstd refuses a frame that decodes past its declared content size, so this stays bounded
        dobj = zstandard.ZstdDecompressor(max_window_size=max_window).decompressobj()
        out = dobj.decompress(payload)
    except zstandard.ZstdError as e:
        raise CorruptPayloadError(f"corrupt zstd frame: {e}") from None
    if not dobj.eof:
        raise CorruptPayloadError("truncated zstd frame")
    if dobj.unused_data:
        raise CorruptPayloadError(f"{len(dobj.unused_data)} bytes after the zstd frame")
    if len(out) != expected:
        raise DecodedLengthError(f"zstd frame decoded to {len(out)} bytes, section needs {expected}")
    return out


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


ANS_CHUNK = 1 << 18  # symbols decoded per call before looking for the fixed point below


def ans_decode(coder, model, count: int, dtype=np.uint8) -> np.ndarray:
    """``count`` symbols of ``model`` from ``coder``, in chunks.

    Once the state x is below 2**24 with no words left, decoding symbol 0 leaves x unchanged (cpk.md 4, step
    2: x = f_0 * 0 + q - 0): every further symbol of this model is 0. The rest of the output is then filled
    with zeros without decoding, so a tiny stream that declares billions of symbols costs no more time than
    the memory of its declared shape (its state is checked by ``ans_finish`` as usual). Symbols are < 256 in
    every model of cpk.md 4, so they come back as uint8 (``dtype``: for the larger alphabets of cpk.md 5.1).
    """
    count = int(count)
    out = np.zeros(count, dtype=dtype)  # every model of cpk.md 4 has at most 256 symbols
    pos = 0
    try:
        while pos < count:
            step = min(ANS_CHUNK, count - pos)
            out[pos : pos + step] = coder.decode(model, step)
            pos += step
            if pos < count and (coder.is_empty() or coder.num_valid_bits() < PRECISION):
                out[pos] = coder.decode(model, 1)[0]
                pos += 1
                if out[pos - 1] == 0:
                    break  # fixed point: the remaining symbols are 0 (already zero in ``out``)
    except Exception as e:
        raise CorruptPayloadError(f"invalid ANS stream: {e}") from None
    return out


def ans_finish(coder) -> None:
    if not coder.is_empty() or coder.num_words():  # state 0 and no words left (cpk.md 4)
        raise CorruptPayloadError("ANS stream has data left after the declared elements")


def unpack_checked(packed: np.ndarray, n: int) -> np.ndarray:
    """Unpack MSB-first bytes to ``n`` bools; the padding bits after ``n`` MUST be zero."""
    packed = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if packed.size != (n + 7) // 8:
        raise DecodedLengthError(f"{8 * packed.size} bits for {n} elements")
    if n % 8 and packed[-1] & ((1 << (8 - n % 8)) - 1):
        raise CorruptPayloadError("nonzero padding bits")
    return np.unpackbits(packed, count=n).view(bool)
