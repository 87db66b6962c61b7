"""ans: order-0 entropy coding of the packed bytes with constriction's ANS coder.

Payload: u8 mode. mode 0: every bit is 0 (payload is exactly 1 byte); mode 1: every bit is 1 (1 byte);
mode 2: uvarint ones (the number of 1 bits, 1..n-1; checked after decoding), then the ANS stream as u32 LE
words. P(bit = 1) = p16/65536 with p16 = clamp(floor((ones*131072 + n) / (2n)), 1, 65535), i.e. ones/n
rounded to 16 bits. The stream codes the ceil(n/8) bytes of the raw packing (MSB first, zero padded), each
with the 256-symbol table ``byte_freqs(p16)`` (8 i.i.d. bits; formats/cpk.md 4).
"""

from __future__ import annotations

import numpy as np

from connpack.errors import DecodedLengthError

from .._util import (
    CorruptPayloadError,
    ans_decode,
    ans_decoder,
    ans_finish,
    ans_words_to_bytes,
    byte_model,
    get_uvarint,
    put_uvarint,
    check_bits,
    check_shape,
    numel,
    unpack_checked,
)

NAME = "ans"
AUTO_STAGE = 0  # auto: always offered, with raw


def offer(bits: np.ndarray, shape, best: int | None, small: bool, level: int) -> bytes | None:
    return encode(bits, shape)


def p16_of(ones: int, n: int) -> int:
    return min(65535, max(1, (ones * 131072 + n) // (2 * n)))


def encode(bits: np.ndarray, shape) -> bytes:
    import constriction

    flat, _ = check_bits(bits, shape)
    n = flat.size
    ones = int(np.count_nonzero(flat))
    if ones == 0:
        return b"\x00"
    if ones == n:
        return b"\x01"
    p16 = p16_of(ones, n)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.packbits(flat).astype(np.int32), byte_model(p16))
    return b"\x02" + put_uvarint(ones) + ans_words_to_bytes(coder.get_compressed())


def decode(payload: bytes, shape) -> np.ndarray:
    shp = check_shape(shape)
    n = numel(shp)
    if len(payload) < 1 or payload[0] > 2:
        raise CorruptPayloadError("ans payload has no valid mode byte")
    mode = payload[0]
    if mode < 2:
        if len(payload) != 1:
            raise CorruptPayloadError("constant ans payload longer than 1 byte")
        return (np.ones if mode else np.zeros)(shp, dtype=bool)
    if n < 2:
        raise CorruptPayloadError("coded ans payload for fewer than 2 elements")
    ones, pos = get_uvarint(payload, 1, limit=n - 1)
    if ones < 1:
        raise CorruptPayloadError("coded ans payload declares no ones")
    p16 = p16_of(ones, n)
    coder = ans_decoder(payload[pos:])
    nbytes = (n + 7) // 8
    syms = ans_decode(coder, byte_model(p16), nbytes)
    ans_finish(coder)
    out = unpack_checked(syms.astype(np.uint8), n)
    if int(np.count_nonzero(out)) != ones:
        raise DecodedLengthError(f"ans section decoded {int(np.count_nonzero(out))} ones, declared {ones}")
    return out.reshape(shp)
