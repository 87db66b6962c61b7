"""connpack.rng inside an ONNX graph: Philox4x32-10 and the init transforms from standard operators.

``generate(b, seed, items)`` appends the nodes that regenerate every listed tensor bit-identically to
``rng.generate`` (the program is the normative one of rng.py's docstring, op for op):

* Philox. All tensors share one batch of blocks: block j of tensor i has counter (j, 0, index_i, 0) and key
  (seed mod 2**32, seed >> 32). The state words are uint64 tensors holding 32-bit values, so the 32x32 -> 64
  products are plain uint64 ``Mul``; hi/lo are ``BitShift`` by 32 and ``BitwiseAnd``. One round is a local
  function (``R``: four uint64 [1, N] words and the key [2], which it bumps) called five times by ``P``
  (state uint64 [4, N]), called twice. Function names are one letter: every call node repeats its name.
* signed_constant: (w >> 8) < ceil(p * 2**24) picks float32(+M) or float32(-M) (as rng.generate does).
* kaiming_uniform: u = float64(w >> 8) * 2**-24, ((u*2) - 1) * B, one Cast to float32.
* kaiming_normal / xavier_normal: Box-Muller in float64 with rng's ln/sin/cos programs. frexp has no ONNX
  operator, so for k1 = (w >> 8) + 1 in [1, 2**24] the bit length L (floor of a nudged log2, see _ln) gives
  u1 = (k1 / 2**L) * 2**(L - 24) with k1 / 2**L in [0.5, 1) exactly; the rest is +, -, *, / and Sqrt in
  float64, each a separate node (onnxruntime evaluates them one by one while folding, with no fused
  multiply-add), in the order the spec writes them.
* zeros / ones: ConstantOfShape.

The nodes read only constants, so onnxruntime folds them when the session is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from connpack import rng
from connpack.exporters.onnx_builder import DOMAIN, Builder, fn_const

FAMILY = {
    "signed_constant": "words",
    "kaiming_uniform": "uniform",
    "kaiming_normal": "normal",
    "xavier_normal": "normal",
    "zeros": "const",
    "ones": "const",
}
_ORDER = ("words", "uniform", "normal")


def _round_function(b: Builder) -> str:
    """R(c0, c1, c2, c3, K) -> (c0', c1', c2', c3', K + (W0, W1)): one round; uint64 [1, N] words, key K [2]."""
    u64 = np.uint64
    nodes = [
        fn_const("M0", 0xD2511F53, u64),
        fn_const("M1", 0xCD9E8D57, u64),
        fn_const("S", 32, u64),
        fn_const("F", 0xFFFFFFFF, u64),
        fn_const("W", [0x9E3779B9, 0xBB67AE85], u64),
        helper.make_node("Split", ["k"], ["k0", "k1"], axis=0, num_outputs=2),
        helper.make_node("Mul", ["c0", "M0"], ["p0"]),
        helper.make_node("Mul", ["c2", "M1"], ["p1"]),
        helper.make_node("BitShift", ["p1", "S"], ["h1"], direction="RIGHT"),
        helper.make_node("BitwiseXor", ["h1", "c1"], ["x1"]),
        helper.make_node("BitwiseXor", ["x1", "k0"], ["d0"]),
        helper.make_node("BitwiseAnd", ["p1", "F"], ["d1"]),
        helper.make_node("BitShift", ["p0", "S"], ["h0"], direction="RIGHT"),
        helper.make_node("BitwiseXor", ["h0", "c3"], ["x0"]),
        helper.make_node("BitwiseXor", ["x0", "k1"], ["d2"]),
        helper.make_node("BitwiseAnd", ["p0", "F"], ["d3"]),
        helper.make_node("Add", ["k", "W"], ["a"]),
        helper.make_node("BitwiseAnd", ["a", "F"], ["n"]),
    ]
    return b.function("R", ["c0", "c1", "c2", "c3", "k"], ["d0", "d1", "d2", "d3", "n"], nodes)


def philox_words(b: Builder, seed: int, blocks: list[tuple[int, int]]) -> str:
    """uint64 [4 * sum(nb)]: words 0 .. 4*nb-1 of stream 0 of each (tensor index, nb), one after another."""
    rnd = _round_function(b)
    i64 = np.int64
    total = sum(nb for _, nb in blocks)
    g = b.op("Range", b.const(0, i64), b.const(total, i64), b.const(1, i64))
    if len(blocks) == 1:
        c0 = g
        c2 = b.const(blocks[0][0], np.uint64)
    else:  # tensor id of each block: a CumSum of ones placed at the starts of tensors 1..T-1
        starts = np.cumsum([0] + [nb for _, nb in blocks])[:-1]
        zeros = b.op("Expand", b.const(0, i64), b.const([total], i64))
        marks = b.op("ScatterElements", zeros, b.const(starts[1:], i64), b.const(np.ones(len(starts) - 1, i64)))
        tid = b.op("CumSum", marks, b.const(0, i64))
        c0 = b.op("Sub", g, b.op("Gather", b.const(starts, i64), tid))
        c2 = b.op("Cast", b.op("Gather", b.const([i for i, _ in blocks], i64), tid), to=TensorProto.UINT64)
    row = b.const([1, total], i64)
    c0 = b.op("Reshape", b.op("Cast", c0, to=TensorProto.UINT64), row)
    zero = b.op("Expand", b.const(0, np.uint64), row)
    state = b.op("Concat", c0, zero, b.op("Expand", c2, row), zero, axis=0)
    key = b.const([seed & 0xFFFFFFFF, seed >> 32], np.uint64)
    body = [helper.make_node("Split", ["s"], ["a0", "a1", "a2", "a3"], axis=0, num_outputs=4)]
    c, k = ["a0", "a1", "a2", "a3"], "k"
    for r in range(5):  # five rounds on separate words, in a function called twice: few call nodes in the file
        out = [f"{x}{r}" for x in "bcde"]
        body.append(helper.make_node(rnd, [*c, k], [*out, f"k{r}"], domain=DOMAIN))
        c, k = out, f"k{r}"
    body.append(helper.make_node("Concat", c, ["t"], axis=0))
    five = b.function("P", ["s", "k"], ["t", k], body)
    for _ in range(2):
        state, key = b.call(five, state, key, outputs=2)
    return b.op("Reshape", b.op("Transpose", state, perm=[1, 0]), b.const([-1], i64))


def _horner(b: Builder, z: str, coeffs) -> str:
    acc = b.op("Mul", z, b.const(coeffs[0]))
    for i, c in enumerate(coeffs[1:]):
        acc = b.op("Add", acc, b.const(c))
        if i < len(coeffs) - 2:
            acc = b.op("Mul", acc, z)
    return acc


def _ln(b: Builder, k1: str) -> str:
    """rng._ln_portable of u1 = k1 * 2**-24 for uint64 k1 in [1, 2**24]."""
    # L - 1 = floor(log2 k1): log2 of an integer in [1, 2**24] is an integer or at least 8.6e-8 (2**-24 / ln 2)
    # away from one, so the 1e-9 nudge over the runtime's Log error (~1e-16) gives the exact floor; m0 is then
    # k1 times a tabled power of two: exact, in [0.5, 1).
    k = b.op("Cast", k1, to=TensorProto.DOUBLE)
    shifted = b.op("Floor", b.op("Add", b.op("Mul", b.op("Log", k), b.const(1.0 / math.log(2.0))), b.const(1e-9)))
    pow2 = b.op("Gather", b.const([2.0**-j for j in range(1, 27)]), b.op("Cast", shifted, to=TensorProto.INT64))
    m0 = b.op("Mul", k, pow2)  # k1 / 2**L
    small = b.op("Less", m0, b.const(rng._SQRT_HALF))
    m = b.op("Where", small, b.op("Mul", m0, b.const(2.0)), m0)
    e = b.op("Sub", shifted, b.const(23.0))  # L - 24
    e = b.op("Sub", e, b.op("Cast", small, to=TensorProto.DOUBLE))
    s = b.op("Div", b.op("Sub", m, b.const(1.0)), b.op("Add", m, b.const(1.0)))
    p = _horner(b, b.op("Mul", s, s), rng._LOG_COEFFS)
    p = b.op("Mul", b.op("Mul", p, s), b.const(2.0))
    p = b.op("Add", p, b.op("Mul", e, b.const(rng._LN2_LO)))
    return b.op("Add", p, b.op("Mul", e, b.const(rng._LN2_HI)))


def _sincos(b: Builder, k2: str) -> tuple[str, str]:
    """rng._sincos_2pi of uint64 k2 in [0, 2**24)."""
    u64 = np.uint64
    q = b.op("BitShift", k2, b.const(22, u64), direction="RIGHT")
    a = b.op("BitwiseAnd", k2, b.const((1 << 22) - 1, u64))
    c = b.op("Sub", b.const(1 << 22, u64), a)
    flip = b.op("Less", c, a)
    a_min = b.op("Where", flip, b.op("Cast", c, to=TensorProto.DOUBLE), b.op("Cast", a, to=TensorProto.DOUBLE))
    t = b.op("Mul", a_min, b.const(rng._TWO_PI_2M24))
    z = b.op("Mul", t, t)
    sin_t = b.op("Mul", _horner(b, z, rng._SIN_COEFFS), t)
    cos_t = _horner(b, z, rng._COS_COEFFS)
    qi = b.op("Cast", q, to=TensorProto.INT64)  # quadrant: odd ones swap sin/cos; signs by table (exact +-1)
    swap = b.op("Xor", b.op("Gather", b.const([False, True, False, True]), qi), flip)
    cos = b.op("Where", swap, sin_t, cos_t)
    sin = b.op("Where", swap, cos_t, sin_t)
    sgn_c = b.op("Gather", b.const([1.0, -1.0, -1.0, 1.0]), qi)
    sgn_s = b.op("Gather", b.const([1.0, 1.0, -1.0, -1.0]), qi)
    return b.op("Mul", cos, sgn_c), b.op("Mul", sin, sgn_s)


def _normals(b: Builder, words: str) -> str:
    """float64 standard normals, one per word (pairs of words -> pairs of values)."""
    pairs = b.op("Reshape", words, b.const([-1, 2], np.int64))
    w1, w2 = b.op("Split", pairs, axis=1, num_outputs=2, outputs=2)
    eight = b.const(8, np.uint64)
    k1 = b.op("Add", b.op("BitShift", w1, eight, direction="RIGHT"), b.const(1, np.uint64))
    r = b.op("Sqrt", b.op("Mul", _ln(b, k1), b.const(-2.0)))
    cos, sin = _sincos(b, b.op("BitShift", w2, eight, direction="RIGHT"))
    xy = b.op("Concat", b.op("Mul", r, cos), b.op("Mul", r, sin), axis=1)
    return b.op("Reshape", xy, b.const([-1], np.int64))


def _slice(b: Builder, x: str, start: int, stop: int) -> str:
    return b.op("Slice", x, b.const([start], np.int64), b.const([stop], np.int64))


@dataclass(frozen=True)
class Signs:
    """A signed-constant tensor before its Where: positive (bool [n]), and the +M / -M constants."""

    positive: str
    plus: str
    minus: str

    def value(self, b: Builder) -> str:
        return b.op("Where", self.positive, self.plus, self.minus)


def generate(b: Builder, seed: int, items: list[tuple[str, object, int, tuple[int, ...]]]) -> dict[str, str | Signs]:
    """Nodes regenerating each (name, InitSpec, tensor index, shape); returns name -> float32 [n] (C order), or
    Signs for signed-constant tensors (a flip then costs one Xor)."""
    out: dict[str, str | Signs] = {}
    todo = []
    for name, init, index, shape in items:
        n = math.prod(shape)
        fam = FAMILY[init.dist]
        if fam == "const" or n == 0:
            value = np.ones(1, np.float32) if init.dist == "ones" and n else np.zeros(1, np.float32)
            out[name] = b.op("ConstantOfShape", b.const([n], np.int64), value=numpy_helper.from_array(value))
        else:
            todo.append((_ORDER.index(fam), index, name, init, shape, n))
    if not todo:
        return out
    todo.sort(key=lambda t: (t[0], t[1]))
    blocks = [(index, -(-(n + (n & 1)) // 4)) for _, index, _, _, _, n in todo]
    words = philox_words(b, seed, blocks)
    start = 0
    fam_start: dict[int, tuple[int, int]] = {}
    for (fam, *_), (_, nb) in zip(todo, blocks):
        lo, hi = fam_start.get(fam, (start, start))
        fam_start[fam] = (lo, hi + 4 * nb)
        start += 4 * nb
    values = {}
    for fam, (lo, hi) in fam_start.items():
        w = _slice(b, words, lo, hi) if (lo, hi) != (0, start) else words
        if _ORDER[fam] == "words":
            values[fam] = b.op("BitShift", w, b.const(8, np.uint64), direction="RIGHT")
        elif _ORDER[fam] == "uniform":
            u = b.op(
                "Mul",
                b.op("Cast", b.op("BitShift", w, b.const(8, np.uint64), direction="RIGHT"), to=TensorProto.DOUBLE),
                b.const(2.0**-24),
            )
            values[fam] = b.op("Sub", b.op("Mul", u, b.const(2.0)), b.const(1.0))
        else:
            values[fam] = _normals(b, w)
    pieces: dict[int, list[str]] = {}
    for fam in fam_start:  # each family's values cut into its tensors (and the words past their ends)
        sizes = []
        for (f, *_, n), (_, nb) in zip(todo, blocks):
            if f == fam:
                sizes += [n, 4 * nb - n] if 4 * nb > n else [n]
        if len(sizes) == 1:
            pieces[fam] = [values[fam]]
            continue
        parts = iter(b.op("Split", values[fam], b.const(sizes, np.int64), outputs=len(sizes)))
        pieces[fam] = []
        for (f, *_, n), (_, nb) in zip(todo, blocks):
            if f == fam:
                pieces[fam].append(next(parts))
                if 4 * nb > n:
                    next(parts)
    for fam, index, name, init, shape, n in todo:
        v = pieces[fam].pop(0)
        fan_in, fan_out = rng.fans(shape)
        scale, gain = float(init.scale), float(init.gain)
        if init.dist == "signed_constant":
            mag = (scale * gain) / math.sqrt(fan_in)
            thr = math.ceil(float(init.p_positive) * 2**24)
            out[name] = Signs(
                b.op("Less", v, b.const(thr, np.uint64)), b.const(np.float32(mag)), b.const(np.float32(-mag))
            )
        else:
            if init.dist == "kaiming_uniform":
                factor = (scale * gain) * math.sqrt(3.0 / fan_in)
            elif init.dist == "kaiming_normal":
                factor = (scale * gain) / math.sqrt(fan_in)
            else:
                factor = scale * math.sqrt(2.0 / (fan_in + fan_out))
            out[name] = b.op("Cast", b.op("Mul", v, b.const(factor)), to=TensorProto.FLOAT)
    return out
