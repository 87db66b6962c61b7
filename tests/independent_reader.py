"""A second .cpk reader written only from formats/cpk.md (no connpack imports). Returns (meta, arrays).

It validates less exhaustively than the reference reader (it raises ValueError on anything wrong); its job
is to show the spec is complete enough to decode the golden vectors to the same arrays.
"""
from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np

DTYPES = {"u1": "u1", "i1": "i1", "i4": "<i4", "i8": "<i8", "f2": "<f2", "f4": "<f4", "f8": "<f8"}


def _uvarint(buf, pos):
    x, shift = 0, 0
    for _ in range(9):
        b = buf[pos]
        pos += 1
        x |= (b & 0x7F) << shift
        if not b & 0x80:
            return x, pos
        shift += 7
    raise ValueError("varint too long")


def _zstd(frame, size):
    import zstandard

    if zstandard.get_frame_parameters(frame).content_size != size:
        raise ValueError("zstd content size")
    with zstandard.ZstdDecompressor().stream_reader(frame) as r:
        out = r.read(size + 1)
    if len(out) != size:
        raise ValueError("zstd length")
    return out


def _unpack(buf, n):
    bits = np.unpackbits(np.frombuffer(bytes(buf), dtype=np.uint8))
    if bits.size < n or bits.size - n >= 8 or bits[n:].any():
        raise ValueError("bad packing")
    return bits[:n].astype(bool)


def _byte_table(p16):
    p, q = p16 / 65536.0, (65536 - p16) / 65536.0
    t = []
    for b in range(256):
        x = 1.0
        for i in range(7, -1, -1):
            x = x * (p if (b >> i) & 1 else q)
        t.append(x)
    return np.array(t)


def _cat(probs):
    import constriction

    return constriction.stream.model.Categorical(np.asarray(probs, dtype=np.float64), perfect=False)


def _ans(buf):
    import constriction

    if len(buf) % 4:
        raise ValueError("ans words")
    return constriction.stream.stack.AnsCoder(np.frombuffer(bytes(buf), dtype="<u4").astype(np.uint32))


def _golomb(p, n):
    flags, k = p[0], p[1]
    m, pos = _uvarint(p, 2)
    rl = (m * k + 7) // 8
    rem = _unpack(p[pos:pos + rl], m * k).reshape(m, k)
    unary = np.unpackbits(np.frombuffer(bytes(p[pos + rl:]), dtype=np.uint8))
    zeros = np.flatnonzero(unary == 0)[:m]
    q = np.diff(zeros, prepend=-1) - 1
    runs = [(int(qq) << k) + int("".join("1" if x else "0" for x in rr) or "0", 2) for qq, rr in zip(q, rem)]
    out = np.zeros(n, dtype=bool)
    at = -1
    for r in runs:
        at += r + 1
        out[at] = True
    return ~out if flags else out


def _ans_codec(p, n):
    if p[0] in (0, 1):
        return np.full(n, bool(p[0]))
    ones, pos = _uvarint(p, 1)
    p16 = min(65535, max(1, (ones * 131072 + n) // (2 * n)))
    c = _ans(p[pos:])
    out = _unpack(np.asarray(c.decode(_cat(_byte_table(p16)), (n + 7) // 8), dtype=np.uint8).tobytes(), n)
    if not c.is_empty() or out.sum() != ones:
        raise ValueError("ans check")
    return out


def _context(p, shape):
    a, orient, b, im = p[0] >> 1, p[0] & 1, p[1], p[2]
    R, C = math.prod(shape[:a]), math.prod(shape[a:])
    if orient:
        R, C = C, R
    L = 1 << b
    pos = 3
    probs = np.ones(L)
    if im == 1:
        probs = np.zeros(L)
        s, pos = _uvarint(p, pos)
        for _ in range(s):
            lv = p[pos]
            cnt, pos = _uvarint(p, pos + 1)
            probs[lv] = cnt / R
    ones, pos = _uvarint(p, pos)
    c = _ans(p[pos:])
    levels = np.asarray(c.decode(_cat(probs), R)) if R else np.zeros(0, int)
    M = L - 2
    mat = np.zeros((R, C), dtype=bool)
    mat[levels == L - 1] = True
    for j in range(1, L - 1):
        rows = np.flatnonzero(levels == j)
        if rows.size:
            s = 2 * j - M - 1
            e = M - abs(s)
            v = max(1, (32768 * e * e) // (M * M))
            mj = v if s < 0 else 65536 - v
            nb = rows.size * C
            syms = np.asarray(c.decode(_cat(_byte_table(mj)), (nb + 7) // 8), dtype=np.uint8)
            mat[rows] = _unpack(syms.tobytes(), nb).reshape(rows.size, C)
    if not c.is_empty() or mat.sum() != ones:
        raise ValueError("context check")
    return mat.T if orient else mat


def _bits(codec, p, shape):
    n = math.prod(shape)
    if codec == "raw":
        if len(p) != (n + 7) // 8:
            raise ValueError("raw length")
        flat = _unpack(p, n)
    elif codec == "zstd":
        flat = _unpack(_zstd(bytes(p), (n + 7) // 8), n)
    elif codec == "golomb":
        flat = _golomb(p, n)
    elif codec == "ans":
        flat = _ans_codec(p, n)
    elif codec == "context":
        return np.ascontiguousarray(_context(p, shape)).reshape(shape)
    else:
        raise ValueError(f"codec {codec}")
    return flat.reshape(shape)


def read_cpk(data: bytes):
    magic, version, hlen, hcrc = struct.unpack_from("<4sHII", data, 0)
    if magic != b"CPK\x00" or version != 1 or hlen > 1 << 20:
        raise ValueError("prefix")
    hb = data[14:14 + hlen]
    if zlib.crc32(hb) != hcrc:
        raise ValueError("header crc")
    if hb[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        hb = _zstd(hb, zstandard.get_frame_parameters(hb).content_size)
    header = json.loads(hb.decode("utf-8"))
    if json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() != hb:
        raise ValueError("not canonical")
    off = 14 + hlen
    if off + sum(e[4] for e in header["s"]) != len(data):
        raise ValueError("not contiguous")
    arrays = {}
    for name, dtype, shape, codec, length, crc in header["s"]:
        p = data[off:off + length]
        off += length
        if zlib.crc32(p) != crc:
            raise ValueError("section crc")
        shape = tuple(shape)
        n = math.prod(shape)
        if dtype == "b1":
            arrays[name] = _bits(codec, p, shape)
            continue
        if dtype == "bf16":
            import ml_dtypes

            dt = np.dtype(ml_dtypes.bfloat16)
        else:
            dt = np.dtype(DTYPES[dtype])
        raw = p if codec == "raw" else _zstd(bytes(p), n * dt.itemsize)
        arrays[name] = np.frombuffer(bytes(raw), dtype=dt).reshape(shape).copy()
    return header["m"], arrays
