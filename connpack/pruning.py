"""Pure mask computations for magnitude and random pruning (numpy only, no torch, no state).

In the style of ``torch.nn.utils.prune``'s ``compute_mask(t, default_mask)``: every function takes the
weights and the previous keep-mask and returns a new boolean keep-mask that is never larger than the
previous one (a pruned connection stays pruned).

Iterative pruning (Paganini & Forde, "On iterative neural network pruning, reinitialization, and the
similarity of masks", section 3.1): each step removes a fixed ``fraction`` (default 20%) of the REMAINING
connections (unstructured) or units (structured) of a layer (local) or of a pool of layers (global).

    l1-us      L1 unstructured: the smallest |w| among the kept connections
    l1-s       L1 structured along the input axis: whole input units/channels w[:, j] with the smallest ||w[:, j]||_1
    l2-s       the same with the L2 norm
    linf-s     the same with the "L-inf" norm of torch.norm(p=-inf): min |w| over the slice
    random-us  random connections;   random-s  random input units/channels
    hybrid     l1-s on convolutions, l1-us on fully-connected layers
    fc-only    l1-us on fully-connected layers, convolutions untouched

Global pruning pools the layers that share a rule (the paper's "middle ground": convolutions and
fully-connected layers of a hybrid network are pooled separately). Structured norms are compared per
element (L1 -> mean |w|, L2 -> root mean square) so slices of different sizes are comparable.
Ties are broken by position, so exactly the requested number of entries is pruned.

ASNI (Damadi et al., Algorithm 1, lines 5-7): ``global_magnitude`` prunes exactly a fraction p of all
prunable weights, the smallest magnitudes first.
"""

from __future__ import annotations

import math

import numpy as np

from connpack import rng
from connpack.errors import SpecError

TECHNIQUES = ("l1-us", "l1-s", "l2-s", "linf-s", "random-us", "random-s", "hybrid", "fc-only")
SCOPES = ("local", "global")
STREAM_PRUNE = 3  # connpack.rng stream id of random pruning scores (not part of the .cpk format)

Rule = tuple[str, bool]  # (score: "l1" | "l2" | "linf" | "random", structured)


def check_fraction(fraction: float) -> float:
    if not (isinstance(fraction, (int, float)) and 0.0 < float(fraction) < 1.0):
        raise SpecError(f"pruning fraction must be in (0, 1), got {fraction!r}")
    return float(fraction)


def rule_for(technique: str, is_conv: bool) -> Rule | None:
    """The (score, structured) rule a technique applies to a layer, or None when the layer is not pruned."""
    if technique not in TECHNIQUES:
        raise SpecError(f"unknown pruning technique '{technique}' (choose from {', '.join(TECHNIQUES)})")
    if technique == "hybrid":
        return ("l1", True) if is_conv else ("l1", False)
    if technique == "fc-only":
        return None if is_conv else ("l1", False)
    score, kind = technique.rsplit("-", 1)
    return score, kind == "s"


def unit_scores(
    weights: np.ndarray,
    previous_mask: np.ndarray,
    score: str,
    structured: bool,
    *,
    seed: int = 0,
    index: int = 0,
    iteration: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, alive) per prunable unit: each connection, or each input slice w[:, j, ...] when structured.

    Scores of norms are per element (mean |w|, RMS, min |w|) over the kept weights of the unit; random
    scores come from connpack.rng keyed by (seed, layer index, iteration), so runs are reproducible.
    """
    w = np.where(previous_mask, np.abs(weights.astype(np.float64)), 0.0)
    if structured:
        if w.ndim < 2:
            raise SpecError("structured pruning needs weights with an input axis (ndim >= 2)")
        axes = (0, *range(2, w.ndim))
        alive = previous_mask.any(axis=axes)
        n = math.prod(w.shape[a] for a in axes)
        if score == "l1":
            s = w.sum(axis=axes) / n
        elif score == "l2":
            s = np.sqrt((w * w).sum(axis=axes) / n)
        elif score == "linf":
            s = np.where(previous_mask, w, np.inf).min(axis=axes)
        else:
            s = None
    else:
        alive = previous_mask.reshape(-1)
        s = w.reshape(-1) if score != "random" else None
    if s is None:
        s = rng.uniform_f64(seed, index, (alive.size,), stream=STREAM_PRUNE + 16 * iteration)
    return np.asarray(s, dtype=np.float64).reshape(-1), alive.reshape(-1)


def lowest(scores: np.ndarray, alive: np.ndarray, count: int) -> np.ndarray:
    """Boolean array marking the ``count`` alive entries with the lowest scores (ties: lower position first)."""
    out = np.zeros(scores.shape, dtype=bool)
    idx = np.flatnonzero(alive)
    count = min(int(count), idx.size)
    if count > 0:
        order = np.argsort(scores[idx], kind="stable")[:count]
        out[idx[order]] = True
    return out


def _expand(unit_mask: np.ndarray, shape: tuple[int, ...], structured: bool) -> np.ndarray:
    """Unit keep-mask -> full-shape keep-mask (a structured unit is an input slice w[:, j, ...])."""
    if not structured:
        return unit_mask.reshape(shape)
    view = unit_mask.reshape((1, shape[1]) + (1,) * (len(shape) - 2))
    return np.broadcast_to(view, shape)


def compute_mask(
    weights: np.ndarray,
    previous_mask: np.ndarray | None = None,
    *,
    fraction: float = 0.2,
    score: str = "l1",
    structured: bool = False,
    seed: int = 0,
    index: int = 0,
    iteration: int = 0,
) -> np.ndarray:
    """One local pruning step of one layer: prune round(fraction * remaining units) more (section 3.1)."""
    check_fraction(fraction)
    weights = np.asarray(weights)
    prev = np.ones(weights.shape, dtype=bool) if previous_mask is None else np.asarray(previous_mask, dtype=bool)
    if prev.shape != weights.shape:
        raise SpecError(f"mask shape {prev.shape} != weight shape {weights.shape}")
    s, alive = unit_scores(weights, prev, score, structured, seed=seed, index=index, iteration=iteration)
    cut = lowest(s, alive, round(fraction * int(alive.sum())))
    return prev & _expand(~cut, weights.shape, structured)


def prune_step(
    weights: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    technique: str,
    fraction: float = 0.2,
    scope: str = "local",
    *,
    seed: int = 0,
    iteration: int = 0,
) -> dict[str, np.ndarray]:
    """One iterative-pruning step over a network's layers (in tensor-index order). 4-D weights are convolutions."""
    check_fraction(fraction)
    if scope not in SCOPES:
        raise SpecError(f"pruning scope must be local or global, got {scope!r}")
    names = list(weights)
    rules = {name: rule_for(technique, weights[name].ndim == 4) for name in names}
    out = {name: np.asarray(masks[name], dtype=bool).copy() for name in names}
    if scope == "local":
        for index, name in enumerate(names):
            if rules[name] is not None:
                sc, st = rules[name]
                out[name] = compute_mask(
                    weights[name],
                    out[name],
                    fraction=fraction,
                    score=sc,
                    structured=st,
                    seed=seed,
                    index=index,
                    iteration=iteration,
                )
        return out
    for rule in sorted({r for r in rules.values() if r is not None}):
        group = [(i, n) for i, n in enumerate(names) if rules[n] == rule]
        parts = [unit_scores(weights[n], out[n], *rule, seed=seed, index=i, iteration=iteration) for i, n in group]
        s = np.concatenate([p[0] for p in parts])
        alive = np.concatenate([p[1] for p in parts])
        cut = lowest(s, alive, round(fraction * int(alive.sum())))
        start = 0
        for (_, n), (ps, _) in zip(group, parts):
            out[n] &= _expand(~cut[start : start + ps.size], weights[n].shape, rule[1])
            start += ps.size
    return out


def global_magnitude(
    weights: dict[str, np.ndarray], sparsity: float, previous: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """ASNI's global threshold (Algorithm 1, lines 6-7): prune exactly round(sparsity * N) of all N weights.

    The pruned ones are those of smallest |w| over the whole network; previously pruned weights are pruned
    first (they stay pruned), so the count never falls below the number already pruned.
    """
    if not (0.0 <= float(sparsity) < 1.0):
        raise SpecError(f"sparsity must be in [0, 1), got {sparsity!r}")
    names = list(weights)
    flat = [np.abs(np.asarray(weights[n], dtype=np.float64)).reshape(-1) for n in names]
    if previous is not None:
        flat = [np.where(np.asarray(previous[n]).reshape(-1), f, -1.0) for n, f in zip(names, flat)]
    s = np.concatenate(flat)
    already = int((s < 0).sum())
    cut = lowest(s, np.ones(s.size, dtype=bool), max(already, round(float(sparsity) * s.size)))
    out, start = {}, 0
    for n, f in zip(names, flat):
        out[n] = ~cut[start : start + f.size].reshape(np.shape(weights[n]))
        start += f.size
    return out
