"""A second .cpk reader written only from formats/cpk.md (no connpack imports). Returns (meta, arrays).

It validates less exhaustively than the reference reader (it raises ValueError on anything wrong); its job
is to show the spec is complete enough to decode the golden vectors to the same arrays.
"""
from __future__ import annotations

import bisect
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


# ---- ANS (cpk.md 4): integer frequency tables and the rANS decoder, written out (no constriction)
TOTAL = 1 << 24


def _quantise(num, den):
    w = [1 + ((TOTAL - len(num)) * x) // den for x in num]
    top = max(range(len(w)), key=lambda i: (w[i], -i))
    w[top] += TOTAL - sum(w)
    return w


def _byte_freqs(p16):
    return _quantise([p16 ** bin(b).count("1") * (65536 - p16) ** (8 - bin(b).count("1")) for b in range(256)], 2**128)


class _Ans:
    """rANS over u32 words, 64-bit state, 24-bit probabilities; the words are read from the end."""

    def __init__(self, buf):
        if len(buf) % 4:
            raise ValueError("ans words")
        self.words = list(struct.unpack(f"<{len(buf) // 4}I", bytes(buf)))
        self.state = 0
        if self.words:
            self.state = self.words.pop()
            if self.state == 0:
                raise ValueError("ans: zero top word")
            if self.words and self.state < 2**32:
                self.state = (self.state << 32) | self.words.pop()

    def decode(self, freqs, count):
        cum = [0]
        for f in freqs:
            cum.append(cum[-1] + f)
        out = []
        for _ in range(count):
            q = self.state & (TOTAL - 1)
            s = bisect.bisect_right(cum, q) - 1
            self.state = (self.state >> 24) * freqs[s] + q - cum[s]
            if self.state < 2**32 and self.words:
                self.state = (self.state << 32) | self.words.pop()
            out.append(s)
        return np.array(out, dtype=np.int64)

    def empty(self):
        return self.state == 0 and not self.words


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
    c = _Ans(p[pos:])
    out = _unpack(c.decode(_byte_freqs(p16), (n + 7) // 8).astype(np.uint8).tobytes(), n)
    if not c.empty() or out.sum() != ones:
        raise ValueError("ans check")
    return out


def _level(j, b):
    L = 1 << b
    M = L - 2
    if j == 0:
        return 0
    if j == L - 1:
        return 65536
    s = 2 * j - M - 1
    e = M - abs(s)
    v = max(1, (32768 * e * e) // (M * M))
    return v if s < 0 else 65536 - v


def _context(p, shape):
    a, br, bc, b = p[0], p[1], p[2], p[3]
    R, C = math.prod(shape[:a]), math.prod(shape[a:])
    kr, kc, L = 1 << br, 1 << bc, 1 << b
    pos = 4
    counts = []
    for k in (kr, kc):
        cnt = []
        for _ in range(k if k > 1 else 0):
            x, pos = _uvarint(p, pos)
            cnt.append(x)
        counts.append(cnt)
    ones, pos = _uvarint(p, pos)
    c = _Ans(p[pos:])
    rc = c.decode(_quantise(counts[0], R), R) if kr > 1 else np.zeros(R, np.int64)
    cc = c.decode(_quantise(counts[1], C), C) if kc > 1 else np.zeros(C, np.int64)
    if kr > 1 and list(np.bincount(rc, minlength=kr)) != counts[0]:
        raise ValueError("row classes")
    if kc > 1 and list(np.bincount(cc, minlength=kc)) != counts[1]:
        raise ValueError("column classes")
    lev = c.decode([TOTAL // L] * L, kr * kc).reshape(kr, kc)
    mat = np.zeros((R, C), dtype=bool)
    for r in range(kr):
        rows = np.flatnonzero(rc == r)
        for k in range(kc):
            cols = np.flatnonzero(cc == k)
            j = int(lev[r, k])
            if j == 0 or not rows.size or not cols.size:
                continue
            if j == L - 1:
                mat[np.ix_(rows, cols)] = True
                continue
            nb = rows.size * cols.size
            syms = c.decode(_byte_freqs(_level(j, b)), (nb + 7) // 8).astype(np.uint8)
            mat[np.ix_(rows, cols)] = _unpack(syms.tobytes(), nb).reshape(rows.size, cols.size)
    if not c.empty() or mat.sum() != ones:
        raise ValueError("context check")
    return mat


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
        return _context(p, shape).reshape(shape)
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
