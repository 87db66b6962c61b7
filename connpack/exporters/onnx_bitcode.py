"""Bit vectors coded so that an ONNX graph decodes them with vectorised standard operators.

``encode(bits, view)`` returns the smallest of these codes of a boolean vector (C order of the tensor):

    raw     np.packbits bytes; decoded by BitShift / BitwiseAnd / Reshape / Slice.        n bits
    rice    Golomb-Rice codes of the gaps between the ones (or the zeros, ``invert``): gap g_i = pos_i -
            pos_{i-1} - 1 is q_i = g_i >> k, in unary (q_i zeros then a one) in the bit vector U ("hi"), and
            r_i = g_i mod 2**k as k-bit fields ("lo"). In parallel: the one ending gap i sits at
            t_i = i + sum_{j<=i} q_j, so pos_i = 2**k (t_i - i) + CumSum(r)_i + i. t comes from the positions
            of the ones of U (TopK of bit * len - index: onnxruntime does not fold NonZero), the fields from
            a Mul by [2**(k-1) .. 1] and ReduceSum, then ScatterElements puts the ones in place.
                                                        m (k + 1) + sum_i (g_i >> k) bits  (<= Elias-Fano)
    rice + rows/cols   the same over the sub-matrix left after removing the rows and the columns of the
            (rows, columns) view that hold no one (no zero when inverted); the kept rows and columns are raw
            bits, their indices found like U's ones, and a position (r, c) of the sub-matrix maps back through
            Gather. Pays where whole inputs never change (MNIST's border pixels in a flip network).

Every bit array of a graph is one packed initializer, unpacked once and Split. Each k in 0..20 is tried; the
smallest payload plus the measured bytes of its decoding nodes wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper

from connpack.exporters.onnx_builder import Builder, fn_const

# Serialized bytes of each decoder's own nodes and constants (measured on one code, the shared unpacking excluded).
_RAW_NODES = 30
_RICE_NODES = 250  # per code; the shared rice function adds ~700 once
_RC_NODES = 460


@dataclass
class Code:
    """One boolean vector as named bit arrays: raw {"bits"}; rice {"hi", "lo"} (+ {"rows", "cols"})."""

    n: int
    kind: str  # "raw" | "rice"
    arrays: dict[str, np.ndarray]  # bool, 1-D
    invert: bool = False
    k: int = 0  # rice: low bits per gap
    m: int = 0  # rice: number of positions
    view: tuple[int, int] | None = None  # rice + rows/cols: the (rows, columns) view

    @property
    def size(self) -> int:
        """Bytes of the arrays plus the estimated bytes of the decoding nodes."""
        nodes = _RAW_NODES if self.kind == "raw" else _RICE_NODES + (_RC_NODES if "rows" in self.arrays else 0)
        return sum(a.size for a in self.arrays.values()) // 8 + nodes


def _gaps(pos: np.ndarray) -> np.ndarray:
    return np.diff(pos, prepend=-1) - 1


def _rice(pos: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Golomb-Rice arrays of the gaps of sorted positions, k low bits."""
    if pos.size == 0:  # nothing to store: the decoder emits a constant
        return {}
    g = _gaps(pos)
    q = g >> k
    u = np.zeros(int(q.sum()) + pos.size, bool)
    u[np.cumsum(q + 1) - 1] = True
    out = {"hi": u}
    if k:
        out["lo"] = ((g[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(bool).reshape(-1)
    return out


def _best_k(pos: np.ndarray) -> int:
    """k >= 1 minimising m (k + 1) + sum(g >> k) (k = 0 pays only where raw bits are smaller anyway)."""
    g = _gaps(pos)
    return min(range(1, 21), key=lambda k: pos.size * (k + 1) + int((g >> k).sum()))


def encode(bits: np.ndarray, view: tuple[int, int] | None = None) -> Code:
    """The smallest code of a boolean array (flattened in C order); ``view``: its (rows, columns) shape."""
    flat = np.ascontiguousarray(bits, dtype=bool).reshape(-1)
    n = flat.size
    best = Code(n, "raw", {"bits": flat})
    for invert in (False, True):
        target = ~flat if invert else flat
        pos = np.flatnonzero(target)
        k = _best_k(pos)
        cand = Code(n, "rice", _rice(pos, k), invert, k, pos.size)
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
        k = _best_k(spos)
        cand = Code(n, "rice", {**_rice(spos, k), "rows": rows, "cols": cols}, invert, k, spos.size, view)
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
    i = np.arange(code.m)
    lows = a["lo"].reshape(code.m, code.k).astype(np.int64) if "lo" in a else np.zeros((code.m, 0), np.int64)
    pos = (np.flatnonzero(a["hi"]) - i) * (1 << code.k) + np.cumsum(lows @ (1 << np.arange(code.k - 1, -1, -1))) + i
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
        bits = b.op(
            "BitwiseAnd",
            b.op("BitShift", col, b.const(np.arange(7, -1, -1, dtype=np.uint8)), direction="RIGHT"),
            b.const(1, np.uint8),
        )
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
        score = b.op(
            "Sub",
            b.op("Mul", b.op("Cast", bits, to=TensorProto.INT64), b.const(count, i64)),
            b.op("Range", b.const(0, i64), b.const(count, i64), b.const(1, i64)),
        )
        return b.op("TopK", score, b.const([m], i64), outputs=2)[1]

    def __call__(self, code: Code) -> str:
        b, i64 = self.b, np.int64
        a = {key: self.names[id(arr)] for key, arr in code.arrays.items()}
        if code.kind == "raw":
            return b.op("Cast", a["bits"], to=TensorProto.BOOL)
        if code.m == 0:
            return b.op("Expand", b.const(code.invert), b.const([code.n], i64))
        pos = b.call(_rice_function(b), a["hi"], a["lo"], b.const(1 << np.arange(code.k - 1, -1, -1, dtype=i64)))
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
        out = b.op(
            "ScatterElements",
            b.op("Expand", b.const(not fill), b.const([code.n], i64)),
            pos,
            b.op("Expand", b.const(fill), b.const([code.m], i64)),
        )
        return out


def _rice_function(b: Builder) -> str:
    """G(U, L, W) (Golomb-Rice) -> int64 [m] positions; U, L: uint8 0/1, W = [2**(k-1) .. 1]; m = ones of U, from the data."""

    def n(op, ins, outs, **kw):
        return helper.make_node(op, ins, outs, **kw)

    body = [
        fn_const("z", 0, np.int64),
        fn_const("o", 1, np.int64),
        fn_const("a1", [1], np.int64),
        fn_const("sh", [-1], np.int64),
        n("Cast", ["U"], ["u"], to=TensorProto.INT64),
        n("ReduceSum", ["u"], ["M"], keepdims=1),  # [m]
        n("Size", ["U"], ["c"]),
        n("Range", ["z", "c", "o"], ["j"]),
        n("Sub", ["u2", "j"], ["s"]),
        n("Mul", ["u", "c"], ["u2"]),
        n("TopK", ["s", "M"], ["tv", "t"]),  # positions of U's ones, increasing
        n("Squeeze", ["M"], ["ms"]),
        n("Range", ["z", "ms", "o"], ["i"]),
        n("Concat", ["M", "sh"], ["fs"], axis=0),
        n("Cast", ["L"], ["l"], to=TensorProto.INT64),
        n("Reshape", ["l", "fs"], ["f"]),
        n("Mul", ["f", "W"], ["fw"]),
        n("ReduceSum", ["fw", "a1"], ["r"], keepdims=0),  # the k-bit fields
        n("ReduceSum", ["W"], ["w1"], keepdims=0),
        n("Add", ["w1", "o"], ["p"]),  # 2**k
        n("Sub", ["t", "i"], ["q"]),
        n("Mul", ["q", "p"], ["qp"]),
        n("CumSum", ["r", "z"], ["rs"]),
        n("Add", ["qp", "rs"], ["x"]),
        n("Add", ["x", "i"], ["P"]),
    ]
    body[8], body[9] = body[9], body[8]  # u2 before s
    return b.function("G", ["U", "L", "W"], ["P"], body)


def view_of(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(output units, everything else) for 2-D and conv weights."""
    if len(shape) < 2:
        return None
    return shape[0], math.prod(shape[1:])
