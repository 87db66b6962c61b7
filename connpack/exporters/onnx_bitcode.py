"""Bit vectors coded so that an ONNX graph decodes them with vectorised standard operators.

``encode(bits, view)`` returns the smallest of these codes of a boolean vector (C order of the tensor):

    raw     np.packbits bytes; decoded by BitShift / BitwiseAnd / Reshape / Slice.        n bits
    ef      Elias-Fano positions of the ones (or of the zeros, ``invert``): with k low bits per position,
            lows = pos mod 2**k as k-bit fields, and the high parts as a unary bit vector H of
            length m + ((n - 1) >> k) + 1 with a one at (pos_i >> k) + i. Decoded by positions(H) - Range
            (the high parts), the k-bit fields times [2**(k-1) .. 1] summed (the lows), Mul/Add, then
            ScatterElements of ones into zeros.                          m (k + 1) + (n >> k) + 1 bits
    ef + rows/cols   the same over the sub-matrix left after removing the rows and the columns of the
            (rows, columns) view that hold no one (no zero when inverted); the kept rows and columns are
            raw bits, their indices found like H's ones, and a position (r, c) of the sub-matrix maps back through
            Gather. Pays where whole inputs never change (MNIST's border pixels in a flip network).

Each k in 0..20 is tried; the smallest payload (plus a fixed estimate of its nodes' bytes) wins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from connpack.exporters.onnx_builder import Builder

# Serialized bytes of each decoder's own nodes and constants (measured on one code, the shared unpacking excluded).
_RAW_NODES = 30
_EF_NODES = 590
_RC_NODES = 460


@dataclass
class Code:
    """One boolean vector as named bit arrays: raw {"bits"}; ef {"hi", "lo"} (+ {"rows", "cols"})."""

    n: int
    kind: str                               # "raw" | "ef"
    arrays: dict[str, np.ndarray]           # bool, 1-D
    invert: bool = False
    k: int = 0                              # ef: low bits per position
    m: int = 0                              # ef: number of positions
    view: tuple[int, int] | None = None     # ef + rows/cols: the (rows, columns) view

    @property
    def size(self) -> int:
        """Bytes of the arrays plus the estimated bytes of the decoding nodes."""
        nodes = _RAW_NODES if self.kind == "raw" else _EF_NODES + (_RC_NODES if "rows" in self.arrays else 0)
        return sum(a.size for a in self.arrays.values()) // 8 + nodes


def _ef(pos: np.ndarray, n: int, k: int) -> dict[str, np.ndarray]:
    """Elias-Fano arrays of sorted positions in [0, n) with k low bits."""
    m = pos.size
    if m == 0:  # nothing to store: the decoder emits a constant
        return {}
    h = np.zeros(m + ((max(n, 1) - 1) >> k) + 1, bool)
    h[(pos >> k) + np.arange(m)] = True
    out = {"hi": h}
    if k and m:
        out["lo"] = ((pos[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(bool).reshape(-1)
    return out


def _best_k(m: int, n: int) -> int:
    """k minimising m (k + 1) + ((n - 1) >> k) + 1."""
    return min(range(21), key=lambda k: m * (k + 1) + ((max(n, 1) - 1) >> k))


def encode(bits: np.ndarray, view: tuple[int, int] | None = None) -> Code:
    """The smallest code of a boolean array (flattened in C order); ``view``: its (rows, columns) shape."""
    flat = np.ascontiguousarray(bits, dtype=bool).reshape(-1)
    n = flat.size
    best = Code(n, "raw", {"bits": flat})
    for invert in (False, True):
        target = ~flat if invert else flat
        pos = np.flatnonzero(target)
        k = _best_k(pos.size, n)
        cand = Code(n, "ef", _ef(pos, n, k), invert, k, pos.size)
        if cand.size < best.size:
            best = cand
        if view is None or view[0] * view[1] != n or min(view) < 2:
            continue
        mat = target.reshape(view)
        rows, cols = mat.any(axis=1), mat.any(axis=0)
        if rows.all() and cols.all():
            continue
        sub = mat[rows][:, cols]
        spos = np.flatnonzero(sub)
        k = _best_k(spos.size, sub.size)
        cand = Code(n, "ef", {**_ef(spos, sub.size, k), "rows": rows, "cols": cols}, invert, k, spos.size, view)
        if cand.size < best.size:
            best = cand
    return best


def decode_python(code: Code) -> np.ndarray:
    """The bits back, in numpy (the reference the graph's nodes follow)."""
    a = code.arrays
    if code.kind == "raw":
        return a["bits"].copy()
    if code.m == 0:
        return np.full(code.n, code.invert)
    hi = np.flatnonzero(a["hi"]) - np.arange(code.m)
    lows = a["lo"].reshape(code.m, code.k).astype(np.int64) if "lo" in a else np.zeros((code.m, 0), np.int64)
    pos = hi * (1 << code.k) + lows @ (1 << np.arange(code.k - 1, -1, -1))
    if "rows" in a:
        rows, cols = np.flatnonzero(a["rows"]), np.flatnonzero(a["cols"])
        pos = rows[pos // cols.size] * code.view[1] + cols[pos % cols.size]
    out = np.zeros(code.n, bool)
    out[pos] = True
    return ~out if code.invert else out


class Decoder:
    """Emits the nodes decoding Codes into bool [n] tensors.

    All the codes' bit arrays are one packed initializer ("bits"), unpacked once and Split into the arrays.
    """

    def __init__(self, b: Builder, codes: list[Code]):
        self.b = b
        i64 = np.int64
        arrays = [a for code in codes for a in code.arrays.values()]
        self.names: dict[int, str] = {}
        if not arrays:
            return
        flat = np.concatenate(arrays)
        packed = np.packbits(flat)
        col = b.op("Unsqueeze", b.init("bits", packed), b.const([1], i64))
        bits = b.op("BitwiseAnd", b.op("BitShift", col, b.const(np.arange(7, -1, -1, dtype=np.uint8)),
                                       direction="RIGHT"), b.const(1, np.uint8))
        bits = b.op("Reshape", bits, b.const([-1], i64))
        sizes = [a.size for a in arrays] + ([8 * packed.size - flat.size] if 8 * packed.size > flat.size else [])
        parts = b.op("Split", bits, b.const(sizes, i64), outputs=len(sizes)) if len(sizes) > 1 else (bits,)
        self.names = {id(a): p for a, p in zip(arrays, parts)}

    def _ones(self, bits: str, count: int, m: int) -> str:
        """int64 [m]: the positions of the m ones of a uint8 [count] 0/1 tensor, in increasing order.

        NonZero would do, but onnxruntime does not fold it (its output shape depends on the data); TopK of
        bit * count - position, k = m, has a known shape and lists the ones first, in increasing position.
        """
        b, i64 = self.b, np.int64
        score = b.op("Sub", b.op("Mul", b.op("Cast", bits, to=TensorProto.INT64), b.const(count, i64)),
                     b.op("Range", b.const(0, i64), b.const(count, i64), b.const(1, i64)))
        return b.op("TopK", score, b.const([m], i64), outputs=2)[1]

    def __call__(self, code: Code) -> str:
        b, i64 = self.b, np.int64
        a = {key: self.names[id(arr)] for key, arr in code.arrays.items()}
        if code.kind == "raw":
            return b.op("Cast", a["bits"], to=TensorProto.BOOL)
        if code.m == 0:
            return b.op("Expand", b.const(code.invert), b.const([code.n], i64))
        pos = b.op("Sub", self._ones(a["hi"], code.arrays["hi"].size, code.m),
                   b.op("Range", b.const(0, i64), b.const(code.m, i64), b.const(1, i64)))
        if "lo" in a:
            fields = b.op("Reshape", b.op("Cast", a["lo"], to=TensorProto.INT64), b.const([-1, code.k], i64))
            lows = b.op("ReduceSum", b.op("Mul", fields, b.const(1 << np.arange(code.k - 1, -1, -1, dtype=i64))),
                        b.const([1], i64), keepdims=0)
            pos = b.op("Add", b.op("Mul", pos, b.const(1 << code.k, i64)), lows)
        if "rows" in a:
            rows, cols = code.arrays["rows"], code.arrays["cols"]
            r = b.op("Div", pos, b.const(int(cols.sum()), i64))
            c = b.op("Sub", pos, b.op("Mul", r, b.const(int(cols.sum()), i64)))
            if not rows.all():
                r = b.op("Gather", self._ones(a["rows"], rows.size, int(rows.sum())), r)
            if not cols.all():
                c = b.op("Gather", self._ones(a["cols"], cols.size, int(cols.sum())), c)
            pos = b.op("Add", b.op("Mul", r, b.const(code.view[1], i64)), c)
        fill = not code.invert
        out = b.op("ScatterElements", b.op("Expand", b.const(not fill), b.const([code.n], i64)), pos,
                   b.op("Expand", b.const(fill), b.const([code.m], i64)))
        return out


def view_of(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(output units, everything else) for 2-D and conv weights."""
    if len(shape) < 2:
        return None
    return shape[0], math.prod(shape[1:])
