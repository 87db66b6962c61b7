"""Quantised kept values (cpk.md 7.2, kind "values"): indices, steps, seed-predicted residuals. Numpy only.

A quantised tensor stores, for its kept weights in C order, integer indices ``q`` (section NAME:v, int32), the
step of each output channel or one step for the tensor (NAME:q, float32) and, optionally, the coefficient ``a``
of the seed prediction (NAME:a, float32): the decoded value is, in float32 arithmetic (one rounding per
operation, no fused multiply-add)

    v = q * step[channel]                       (no NAME:a)
    v = (q * step[channel]) + (a * G)           (NAME:a: G = the tensor's generated weight at that position)

For a network trained from connpack's generated init (IMP, ASNI), trained values stay close to a * G: the
residual has a smaller spread and costs fewer bits at the same step. Every reader gets the same bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from connpack.errors import SpecError

FLOAT_TYPES = ("float32", "float16", "bfloat16")
MIN_BITS, MAX_BITS = 2, 16


@dataclass(frozen=True)
class Quant:
    """How one tensor's kept values are quantised: float32 steps of shape (1,) or (out channels,), the
    seed-prediction coefficient ``a`` (a float32 value) or None, and the indices the encoder chose (int32,
    one per kept value; None: the nearest, ``quantise``). Readers see only indices and steps."""

    steps: np.ndarray
    a: float | None = None
    indices: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        s = np.asarray(self.steps, dtype=np.float32).reshape(-1)
        if s.size == 0 or not np.all(np.isfinite(s)) or not np.all(s > 0):
            raise SpecError("quantisation steps must be finite and > 0")
        object.__setattr__(self, "steps", s)
        if self.a is not None:
            object.__setattr__(self, "a", float(np.float32(self.a)))
        if self.indices is not None:
            q = np.asarray(self.indices)
            if q.ndim != 1 or q.dtype.kind not in "iu" or (q.size and np.abs(q.astype(np.int64)).max() >= 2**24):
                raise SpecError("quantisation indices must be one integer per kept value, |index| < 2^24")
            object.__setattr__(self, "indices", q.astype(np.int32))


def parse(values: str) -> tuple[str, int]:
    """'float16' -> ('float', 0); 'q8' -> ('q', 8). Refuses anything else (SpecError, exit 2)."""
    if values in FLOAT_TYPES:
        return "float", 0
    if isinstance(values, str) and values[:1] == "q" and values[1:].isdigit():
        bits = int(values[1:])
        if MIN_BITS <= bits <= MAX_BITS:
            return "q", bits
        raise SpecError(
            f"--values {values}: quantisation needs {MIN_BITS} to {MAX_BITS} bits (q{MIN_BITS} .. q{MAX_BITS})"
        )
    raise SpecError(f"unknown value type '{values}' (choose from {', '.join(FLOAT_TYPES)}, or q2 .. q16)")


def check_options(values, max_error=None, error_on: str = "outputs", max_accuracy_drop=None) -> tuple[str, int]:
    """``parse(values)`` after checking the target options of connpack.pack (SpecError, exit 2, on any bad one)."""
    how = parse(values)
    if max_error is not None and max_accuracy_drop is not None:
        raise SpecError("give --max-error or --max-accuracy-drop, not both")
    target = max_error is not None or max_accuracy_drop is not None
    if target and values != "float32":
        raise SpecError(f"--values {values} and a target (--max-error / --max-accuracy-drop) exclude each other")
    if max_error is not None and not (
        isinstance(max_error, (int, float)) and math.isfinite(max_error) and max_error > 0
    ):
        raise SpecError(f"--max-error must be a number > 0 (a relative L2 error, e.g. 0.01), got {max_error}")
    if error_on not in ("outputs", "weights"):
        raise SpecError(f"--error-on must be outputs or weights, got {error_on!r}")
    if max_accuracy_drop is not None and not (
        isinstance(max_accuracy_drop, (int, float)) and math.isfinite(max_accuracy_drop) and max_accuracy_drop >= 0
    ):
        raise SpecError(f"--max-accuracy-drop must be a number of points >= 0, got {max_accuracy_drop}")
    return how


def channels(bits: np.ndarray) -> np.ndarray:
    """The output channel (index along axis 0) of each kept weight, kept weights in C order."""
    if not bits.ndim:
        return np.zeros(int(bits), np.intp)
    rows = bits.reshape(bits.shape[0], -1)
    return np.repeat(np.arange(rows.shape[0], dtype=np.intp), np.count_nonzero(rows, axis=1))


def _step_of(steps: np.ndarray, chan: np.ndarray) -> np.ndarray | np.float32:
    return steps[0] if steps.size == 1 else steps[chan]


def prediction(a: float | None, g_kept: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    return (np.float32(a) * np.asarray(g_kept, dtype=np.float32)).astype(np.float32)


def dequantise(
    q: np.ndarray, steps: np.ndarray, chan: np.ndarray, a: float | None = None, g_kept: np.ndarray | None = None
) -> np.ndarray:
    """The decoded float32 values (the normative computation above)."""
    v = (np.asarray(q).astype(np.float32) * _step_of(np.asarray(steps, np.float32), chan)).astype(np.float32)
    if a is not None:
        v = (v + prediction(a, g_kept)).astype(np.float32)
    return v


def quantise(values: np.ndarray, quant: Quant, chan: np.ndarray, g_kept: np.ndarray | None = None) -> np.ndarray:
    """The indices (int32) ``quant`` chose for ``values``, else those ``dequantise`` maps nearest to them
    (round half to even)."""
    if quant.indices is not None:
        if quant.indices.size != np.size(values):
            raise SpecError(f"{quant.indices.size} quantisation indices for {np.size(values)} kept values")
        return quant.indices
    target = np.asarray(values, dtype=np.float64)
    pred = prediction(quant.a, g_kept)
    if pred is not None:
        target = target - pred
    q = np.rint(target / _step_of(quant.steps, chan).astype(np.float64))
    if q.size and np.abs(q).max() >= 2**24:
        raise SpecError("quantisation step too fine for these values (indices beyond 2^24)")
    return q.astype(np.int32)


def cancel_mean(
    values: np.ndarray, quant: Quant, chan: np.ndarray, means: np.ndarray, g_kept: np.ndarray | None = None
) -> Quant:
    """``quant`` with indices chosen so that each output channel's rounding errors cancel on the mean input.

    A weight row w (one output channel) feeding inputs x adds the output error e . x, where e is the row's
    rounding error; over inputs with means m (``means``: the mean input of each kept weight, e.g. after a
    ReLU all positive) the part e . m is common to every input and, summed over a row, dominates. Rounding
    to the nearest index leaves e . m a random walk; this moves the fewest, cheapest weights one index to the
    other side (each adds step^2 - 2|e| step to the squared error, least per unit of e . m first) until
    e . m is as close to 0 as single moves get it. The indices stay within one of the nearest."""
    q = quantise(values, replace(quant, indices=None), chan, g_kept).astype(np.int64)
    if q.size == 0:
        return replace(quant, indices=q.astype(np.int32))
    target = np.asarray(values, np.float64)
    pred = prediction(quant.a, g_kept)
    if pred is not None:
        target = target - pred
    step = np.broadcast_to(_step_of(quant.steps, chan).astype(np.float64), q.shape)
    m = np.asarray(means, np.float64)
    err = target - q * step
    n_rows = int(chan.max()) + 1
    total = np.bincount(chan, weights=err * m, minlength=n_rows)  # e . m per row
    way = np.sign(total)[chan] * np.sign(m)  # +1: move the index up (error down)
    gain = step * np.abs(m)  # how much one move cuts |e . m|
    cost = step * step - 2.0 * way * err * step
    useful = gain > 0
    ratio = np.where(useful, cost / np.where(useful, gain, 1.0), np.inf)
    order = np.lexsort((ratio, chan))  # by row, cheapest first
    g_sorted = np.where(useful, gain, 0.0)[order]
    run = np.cumsum(g_sorted)
    starts = np.searchsorted(chan[order], np.arange(n_rows))
    before = np.concatenate([[0.0], run])[starts][chan[order]]  # cumulative gain before the row
    after = run - before
    prev = after - g_sorted
    need = np.abs(total)[chan[order]]
    move = (g_sorted > 0) & (prev < need) & (after - need < need - prev)
    q[order[move]] += way[order[move]].astype(np.int64)
    return replace(quant, indices=q.astype(np.int32))


def fit_a(values: np.ndarray, g_kept: np.ndarray) -> float:
    """Least-squares coefficient of the prediction a * G (float32)."""
    g = np.asarray(g_kept, dtype=np.float64)
    gg = float(g @ g)
    return float(np.float32(float(np.asarray(values, np.float64) @ g) / gg)) if gg > 0 else 0.0


def fixed_bits_steps(values: np.ndarray, chan: np.ndarray, n_channels: int, bits: int) -> np.ndarray:
    """Per-output-channel steps of a ``bits``-bit symmetric quantiser: max |value| of the channel / (2^(bits-1)-1)
    (a channel with no kept value, or only zeros, gets step 1)."""
    top = np.zeros(n_channels, dtype=np.float64)
    if values.size:
        np.maximum.at(top, chan, np.abs(values.astype(np.float64)))
    steps = top / (2 ** (bits - 1) - 1)
    steps[steps <= 0] = 1.0
    steps = steps.astype(np.float32)
    return np.where(np.isfinite(steps) & (steps > 0), steps, np.float32(1)).astype(np.float32)


def coded_bytes(q: np.ndarray) -> int:
    """Bytes of the order-0 symbol stream of ``q`` (cpk.md 5.1), the ``qans`` payload."""
    from connpack.formats.codecs import symbols

    if not symbols.fits(q):
        return 4 * q.size
    return len(symbols.encode(q))


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    """||got - ref|| / ||ref|| (0 when both are zero)."""
    ref = np.asarray(ref, np.float64)
    num, den = float(np.linalg.norm(np.asarray(got, np.float64) - ref)), float(np.linalg.norm(ref))
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


# --------------------------------------------------------------------------- planning (what to store)
@dataclass
class Kept:
    """One "values" tensor as the planner sees it."""

    name: str
    values: np.ndarray  # float32 kept values, C order
    chan: np.ndarray  # output channel of each
    n_out: int  # output channels (first dimension)
    g_kept: np.ndarray | None  # the generated weight at the kept positions (None: no seed prediction)

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.values, dtype=np.float64)))) if self.values.size else 0.0


def kept_tensors(desc, predict: bool | None = None, biases: bool = True) -> list[Kept]:
    """The "values" tensors of a Description, then (``biases``) the biases of its "values" layers (dense
    tensors L.bias beside a "values" tensor L.weight; cpk.md 7.2.1). ``predict`` (default: for networks
    connpack trained, i.e. not imported) regenerates each tensor's init G so the seed prediction a * G can be
    tried."""
    from connpack import rng

    if predict is None:
        predict = desc.spec.method != "import"
    out = []
    for index, (name, code) in enumerate(desc.tensors.items()):
        if code.kind != "values":
            continue
        g_kept = None
        if predict and code.values.size:
            g = rng.generate(desc.spec.init_for(name), desc.spec.rng.seed, index, code.shape)
            g_kept = g[code.bits]
        n_out = code.shape[0] if code.shape else 1
        out.append(Kept(name, np.asarray(code.values, np.float32), channels(code.bits), n_out, g_kept))
    for name, v in desc.dense.items() if biases else ():
        layer = desc.tensors.get(name.removesuffix(".bias") + ".weight") if name.endswith(".bias") else None
        if layer is not None and layer.kind == "values" and np.asarray(v).dtype.kind == "f":
            flat = np.asarray(v, np.float32).ravel()
            out.append(Kept(name, flat, np.zeros(flat.size, np.intp), 1, None))
    return out


def choose(k: Kept, steps_of) -> tuple[Quant, int]:
    """The Quant for ``k`` (with steps ``steps_of(target values)``), seed-predicted where its indices code
    smaller; returns it with the coded bytes of its indices."""
    best = Quant(steps_of(k.values))
    size = coded_bytes(quantise(k.values, best, k.chan))
    if k.g_kept is not None:
        a = fit_a(k.values, k.g_kept)
        if a != 0.0:
            pred = prediction(a, k.g_kept)
            cand = Quant(steps_of((k.values - pred).astype(np.float32)), a)
            csize = coded_bytes(quantise(k.values, cand, k.chan, k.g_kept)) + 4
            if csize < size:
                best, size = cand, csize
    return best, size


def plan_bits(kept: list[Kept], bits: int) -> dict[str, Quant]:
    """``--values qB``: per-output-channel steps of a B-bit quantiser of each tensor."""
    return {k.name: choose(k, lambda v, k=k: fixed_bits_steps(v, k.chan, k.n_out, bits))[0] for k in kept}


def plan_relative(kept: list[Kept], rel: dict, means: dict | None = None) -> dict[str, Quant]:
    """Steps ``rel[name]`` times the rms of each tensor's values: one step (a number) or one per output
    channel (an array of n_out numbers). ``means``: the mean input of each kept weight, for the tensors
    whose rounding errors should cancel on it (``cancel_mean``)."""
    out = {}
    for k in kept:
        steps = np.maximum(np.asarray(rel[k.name], np.float64).reshape(-1) * k.rms, 1e-30).astype(np.float32)
        quant = choose(k, lambda v, s=steps: s)[0]
        if means is not None and k.name in means:
            quant = cancel_mean(k.values, quant, k.chan, means[k.name], k.g_kept if quant.a is not None else None)
        out[k.name] = quant
    return out


def decoded(k: Kept, quant: Quant) -> np.ndarray:
    """What a reader decodes for ``k`` stored with ``quant``."""
    g = k.g_kept if quant.a is not None else None
    return dequantise(quantise(k.values, quant, k.chan, g), quant.steps, k.chan, quant.a, g)
