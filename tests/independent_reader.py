"""A second .cpk reader written only from formats/cpk.md (no connpack imports). Returns (meta, arrays).

It validates less exhaustively than the reference reader (it raises ValueError on anything wrong); its job
is to show the spec is complete enough to decode the golden vectors to the same arrays.
"""

from __future__ import annotations

import bisect
import hashlib
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
    rem = _unpack(p[pos : pos + rl], m * k).reshape(m, k)
    unary = np.unpackbits(np.frombuffer(bytes(p[pos + rl :]), dtype=np.uint8))
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


def _symbols(p, n):
    """A symbol stream (cpk.md 5.1): n integers."""
    if n == 0:
        if len(p):
            raise ValueError("symbols: data for no elements")
        return np.zeros(0, dtype=np.int64)
    z, pos = _uvarint(p, 0)
    lo = -(z >> 1) - 1 if z & 1 else z >> 1
    size, pos = _uvarint(p, pos)
    size += 1
    counts = []
    for _ in range(size):
        c, pos = _uvarint(p, pos)
        counts.append(c)
    if sum(counts) != n:
        raise ValueError("symbols: counts")
    if size == 1:
        if pos != len(p):
            raise ValueError("symbols: trailing data")
        return np.full(n, lo, dtype=np.int64)
    ans = _Ans(p[pos:])
    sym = ans.decode(_quantise(counts, n), n)
    if not ans.empty() or np.bincount(sym, minlength=size).tolist() != counts:
        raise ValueError("symbols: stream")
    return sym + lo


def _planes(p, n, dt):
    """planes (cpk.md 5.2): plane j = byte k-1-j of each element's little-endian bytes."""
    k, pos, lengths = dt.itemsize, 0, []
    for _ in range(k - 1):
        length, pos = _uvarint(p, pos)
        lengths.append(length)
    lengths.append(len(p) - pos - sum(lengths))
    le = np.zeros((n, k), dtype=np.uint8)
    for j, length in enumerate(lengths):
        plane = _symbols(p[pos : pos + length], n)
        if plane.size and (plane.min() < 0 or plane.max() > 255):
            raise ValueError("planes: byte range")
        le[:, k - 1 - j] = plane
        pos += length
    return le.reshape(-1).view(dt)


def read_cpk(data: bytes):
    magic, version, hlen, hcrc = struct.unpack_from("<4sHII", data, 0)
    if magic != b"CPK\x00" or version != 1 or hlen > 1 << 20:
        raise ValueError("prefix")
    hb = data[14 : 14 + hlen]
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
        p = data[off : off + length]
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
        if codec == "qans" and dtype == "i4":
            arrays[name] = _symbols(p, n).astype("<i4").reshape(shape)
            continue
        if codec == "planes":
            arrays[name] = _planes(p, n, dt).reshape(shape).copy()
            continue
        raw = p if codec == "raw" else _zstd(bytes(p), n * dt.itemsize)
        arrays[name] = np.frombuffer(bytes(raw), dtype=dt).reshape(shape).copy()
    return header["m"], arrays


# ---- the network layer (cpk.md 7): rebuild the effective float32 tensors from meta + sections
SPEC_DEFAULTS = {
    "rng": {"seed": 0, "algorithm": "philox4x32-10"},
    "init": {"dist": "signed_constant", "p_positive": 0.5, "scale": 1.0, "gain": math.sqrt(2.0)},
}
M32 = 0xFFFFFFFF


def philox_words(seed, index, n, stream=0):
    """Words 0..n-1 of the Philox4x32-10 stream (seed, index, stream) (cpk.md 7.4), uint32."""
    nb = (n + 3) // 4
    b = np.arange(nb, dtype=np.uint64)
    c = [b & M32, b >> np.uint64(32), np.full(nb, index, np.uint64), np.full(nb, stream, np.uint64)]
    k0, k1 = seed & M32, seed >> 32
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0 = c[0] * np.uint64(0xD2511F53)
        p1 = c[2] * np.uint64(0xCD9E8D57)
        c = [
            (p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0),
            p1 & np.uint64(M32),
            (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1),
            p0 & np.uint64(M32),
        ]
    return np.stack(c, axis=1).reshape(-1)[:n].astype(np.uint32)


def _f64(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


SQRT_HALF, LN2_HI, LN2_LO = _f64(0x3FE6A09E667F3BCD), _f64(0x3FE62E42FEE00000), _f64(0x3DEA39EF35793C76)
TWO_PI_2M24 = _f64(0x3E9921FB54442D18)


def _ln(u):
    m, e = math.frexp(u)
    if m < SQRT_HALF:
        m, e = 2 * m, e - 1
    s = (m - 1) / (m + 1)
    z = s * s
    p = 1.0 / 21
    for k in range(19, 0, -2):
        p = p * z + 1.0 / k
    return ((p * s) * 2 + e * LN2_LO) + e * LN2_HI


def _sincos(k2):
    q, a = k2 >> 22, k2 % (1 << 22)
    a2 = min(a, (1 << 22) - a)
    swap = (a2 != a) ^ bool(q & 1)
    t = a2 * TWO_PI_2M24
    z = t * t
    s = 1.0 / math.factorial(17)
    for n in range(15, 0, -2):
        s = s * z + (-1) ** ((n - 1) // 2) * (1.0 / math.factorial(n))
    sin_t = s * t
    c = 1.0 / math.factorial(16)
    for n in range(14, -1, -2):
        c = c * z + (-1) ** (n // 2) * (1.0 / math.factorial(n))
    cos = (sin_t if swap else c) * (-1.0 if q in (1, 2) else 1.0)
    sin = (c if swap else sin_t) * (-1.0 if q in (2, 3) else 1.0)
    return cos, sin


def normals(seed, index, n, stream=0):
    """Box-Muller normals in float64 from the fixed ln/sin/cos programs (cpk.md 7.5)."""
    w = philox_words(seed, index, 2 * ((n + 1) // 2), stream)
    out = []
    for j in range(0, w.size, 2):
        r = math.sqrt(-2 * _ln(((int(w[j]) >> 8) + 1) * 2.0**-24))
        cos, sin = _sincos(int(w[j + 1]) >> 8)
        out += [r * cos, r * sin]
    return np.array(out[:n], dtype=np.float64)


def generate(init, seed, index, shape):
    """One generated weight tensor (cpk.md 7.6), float32."""
    init = {**SPEC_DEFAULTS["init"], **init}
    n = math.prod(shape)
    if init["dist"] in ("zeros", "ones") or n == 0:
        return np.full(shape, 1.0 if init["dist"] == "ones" else 0.0, dtype=np.float32)
    fan_in = shape[1] * math.prod(shape[2:]) if len(shape) > 1 else shape[0]
    fan_out = shape[0] * math.prod(shape[2:]) if len(shape) > 1 else shape[0]
    sg = init["scale"] * init["gain"]
    u = (philox_words(seed, index, n) >> 8).astype(np.float64) * 2.0**-24
    if init["dist"] == "signed_constant":
        mag = sg / math.sqrt(fan_in)
        v = np.where(u < init["p_positive"], mag, -mag)
    elif init["dist"] == "kaiming_uniform":
        v = ((u * 2) - 1) * (sg * math.sqrt(3 / fan_in))
    elif init["dist"] == "kaiming_normal":
        v = normals(seed, index, n) * (sg / math.sqrt(fan_in))
    elif init["dist"] == "xavier_normal":
        v = normals(seed, index, n) * (init["scale"] * math.sqrt(2 / (fan_in + fan_out)))
    else:
        raise ValueError(f"init {init['dist']}")
    return v.astype(np.float32).reshape(shape)


def read_network(data: bytes):
    """The effective float32 tensors of a packed network: {state_dict key: array}; checks the weight hashes."""
    meta, arrays = read_cpk(data)
    spec = meta["spec"]
    seed = {**SPEC_DEFAULTS["rng"], **spec.get("rng", {})}["seed"]
    out, used = {}, set()
    for name, e in sorted(meta["t"].items(), key=lambda kv: kv[1]["i"]):
        kind, main = e["k"], arrays[name]
        used.add(name)
        if e.get("o") == "g":  # bits stored in the order of |G| (key: float32 bits of |G| >> 16, stable)
            init = {**spec.get("init", {}), **spec.get("inits", {}).get(name, {})}
            key = np.abs(generate(init, seed, e["i"], main.shape)).view(np.uint32).ravel() >> 16
            flat = np.empty(main.size, dtype=bool)
            flat[np.argsort(key, kind="stable")] = main.ravel()
            main = flat.reshape(main.shape)
        if kind in ("mask", "flip"):
            init = {**spec.get("init", {}), **spec.get("inits", {}).get(name, {})}
            g = generate(init, seed, e["i"], main.shape)
            h = hashlib.sha256(g.astype("<f4").tobytes()).hexdigest()[:16]
            if h != e["h"]:
                raise ValueError(f"weight hash of {name}")
            w = np.where(main, g, np.float32(0)) if kind == "mask" else np.where(main, -g, g)
        elif kind == "dense":
            w = main
        else:
            w = np.zeros(main.shape, dtype=np.float32)
            if kind == "ternary":
                used.add(name + ":s")
                c_neg, c_pos = (np.float32(x) for x in e["c"])
                w[main] = np.where(arrays[name + ":s"], c_pos, c_neg)
            else:
                used.add(name + ":v")
                v = arrays[name + ":v"]
                if v.dtype.kind == "i":  # quantised (cpk.md 7.2.1), binary32 arithmetic, one rounding per step
                    used.add(name + ":q")
                    steps = arrays[name + ":q"].astype(np.float32)
                    rows = np.nonzero(main.reshape(main.shape[0], -1))[0]
                    s = steps[rows] if steps.size > 1 else np.full(v.size, steps[0], dtype=np.float32)
                    v = (v.astype(np.float32) * s).astype(np.float32)
                    if name + ":a" in arrays:
                        used.add(name + ":a")
                        init = {**spec.get("init", {}), **spec.get("inits", {}).get(name, {})}
                        g = generate(init, seed, e["i"], main.shape)
                        if hashlib.sha256(g.astype("<f4").tobytes()).hexdigest()[:16] != e["h"]:
                            raise ValueError(f"weight hash of {name}")
                        a = arrays[name + ":a"].astype(np.float32)[0]
                        v = (v + (a * g[main]).astype(np.float32)).astype(np.float32)
                w[main] = v.astype(np.float32)
        out[name] = w.astype(np.float32)
    for k, v in arrays.items():
        if k in used or k.endswith(":q"):
            continue
        if v.dtype.kind == "i":  # a quantised dense tensor (cpk.md 7.2.1): float32(q) * step
            v = (v.astype(np.float32) * arrays[k + ":q"].astype(np.float32)[0]).astype(np.float32)
        out[k] = v
    return out


def read_data(data: bytes):
    """The data contract of a packed network (cpk.md 7.9) as a dict with the input shape and class count
    filled in from the architecture, or None when the file has no `data` (unknown: never guessed)."""
    meta, _ = read_cpk(data)
    if "data" not in meta:
        return None
    d = meta["data"]
    model = meta["spec"].get("model", {})
    in_shape, num_classes = model.get("in_shape", [1, 28, 28]), model.get("num_classes", 10)

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def name(s):
        return isinstance(s, str) and 1 <= len(s.encode("utf-8")) <= 256 and s.isprintable()

    if not isinstance(d, dict) or set(d) - {"dataset", "mean", "std", "range", "classes"}:
        raise ValueError("data: not an object, or an unknown field")
    if not name(d.get("dataset")):
        raise ValueError("data.dataset")
    for key in ("mean", "std"):
        v = d.get(key)
        if not (isinstance(v, list) and len(v) == in_shape[0] and all(number(x) for x in v)):
            raise ValueError(f"data.{key}")
    if any(x <= 0 for x in d["std"]):
        raise ValueError("data.std")
    r = d.get("range")
    if r is not None and not (isinstance(r, list) and len(r) == 2 and all(number(x) for x in r) and r[0] < r[1]):
        raise ValueError("data.range")
    c = d.get("classes")
    if c is not None and not (isinstance(c, list) and len(c) == num_classes and all(name(x) for x in c)):
        raise ValueError("data.classes")
    return {**d, "shape": list(in_shape), "num_classes": num_classes}


def prepare(data: dict, x: np.ndarray) -> np.ndarray:
    """The network input for raw input x (N, C, H, W): (x - float32(mean[c])) / float32(std[c]) in float32."""
    mean = np.asarray(data["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(data["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return (np.asarray(x, dtype=np.float32) - mean) / std
