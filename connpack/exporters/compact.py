"""The compaction pass over the op IR (connpack.exporters.ops), and the ``compact`` export kind.

``compact`` removes every hidden unit (Linear output feature, Conv2d output channel) that cannot change the
output, which is the *effective sparsity* of the reinitialisation paper (appendix B): weights explicitly
pruned plus those disconnected from the output. Two passes over the unit spaces between ops:

* forward (constants): a unit whose non-zero incoming weights all come from constant units is constant;
  its value is ``b_i + sum_j W_ij k_j`` carried through BN (per-channel affine), ReLU, MaxPool and global
  average pooling. With no bias and all incoming weights pruned the constant is ReLU(0) = 0. A constant
  input is *folded* into the consumer's bias (and its column removed) when the consumer is a Linear, or a
  Conv2d without padding, or the constant is 0; a non-zero constant feeding a padded Conv2d is kept (the zero padding makes its
  contribution position dependent, so folding would not be exact).
* backward (reachability): all output units are kept; a unit of the previous space is kept when it is not
  folded and has a non-zero weight to a kept unit. Flatten maps channels to their h*w features (a channel
  is kept when any of its features is). A space never becomes empty (unit 0 is kept, unfolded).

The result is a smaller dense network with the same function (up to float32 summation order). Not
compacted, by design: graph inputs (the image keeps its shape) and anything that is not a plain chain --
residual adds (both branches would have to drop the same channels), concatenations, grouped convs. Such
networks raise SpecError from ``ops.ops_from_module``; export them densely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from connpack.exporters.onnx_ops import to_onnx
from connpack.exporters import onnx_file
from connpack.exporters.ops import Op, ops_from_module, spaces


@dataclass(frozen=True)
class Compaction:
    """Units kept per hidden space (after each Linear/Conv2d), and the weights left."""

    units: dict[str, tuple[int, int]]  # layer name -> (units before, units kept)
    weights_before: int  # all Linear/Conv2d weights
    nonzero_before: int  # explicitly kept (non-zero) weights
    nonzero_after: int  # non-zero weights left in the compacted graph

    @property
    def units_removed(self) -> float:
        before = sum(b for b, _ in self.units.values())
        return 1.0 - sum(a for _, a in self.units.values()) / max(1, before)

    @property
    def explicit_sparsity(self) -> float:
        return 1.0 - self.nonzero_before / max(1, self.weights_before)

    @property
    def effective_sparsity(self) -> float:
        return 1.0 - self.nonzero_after / max(1, self.weights_before)


def _support(w: np.ndarray) -> np.ndarray:
    """[out, in] bool: which (output, input) unit pairs have a non-zero weight (any kernel position)."""
    return (w.reshape(w.shape[0], w.shape[1], -1) != 0).any(axis=2)


def compact(ops: list[Op], in_shape: tuple[int, ...]) -> tuple[list[Op], Compaction]:
    """Remove dead units (see the module docstring); returns the new ops and what was removed."""
    sp = spaces(ops, in_shape)
    # forward: constant value of every unit of every space (NaN = varies with the input)
    const = [np.full(sp[0][0], np.nan)]
    fold: dict[int, np.ndarray] = {}
    for i, op in enumerate(ops):
        k = const[-1]
        if op.kind in ("linear", "conv"):
            w = op.params["weight"].astype(np.float64)
            b = op.params.get("bias", np.zeros(w.shape[0], np.float32)).astype(np.float64)
            foldable = ~np.isnan(k)
            if op.kind == "conv" and any(op.attrs["padding"]):
                foldable &= k == 0
            fold[i] = foldable
            is_const = ~(_support(w) & ~foldable[None, :]).any(axis=1)
            kz = np.where(foldable, k, 0.0)
            val = b + w.reshape(w.shape[0], w.shape[1], -1).sum(axis=2) @ kz
            const.append(np.where(is_const, val, np.nan))
        elif op.kind == "bn":
            p = {n: v.astype(np.float64) for n, v in op.params.items()}
            const.append((k - p["mean"]) / np.sqrt(p["var"] + op.attrs["eps"]) * p["scale"] + p["shift"])
        elif op.kind == "relu":
            const.append(np.maximum(k, 0.0))
        elif op.kind == "flatten":
            hw = sp[i][1]
            const.append(np.repeat(k, hw[0] * hw[1]) if hw else k)
        else:
            const.append(k)
    # backward: units that reach the output
    kept = [np.ones(n, bool) for n, _ in sp]
    for i in range(len(ops) - 1, -1, -1):
        op, out_kept = ops[i], kept[i + 1]
        if op.kind in ("linear", "conv"):
            k_in = _support(op.params["weight"])[out_kept].any(axis=0) & ~fold[i]
        elif op.kind == "flatten" and sp[i][1] is not None:
            hw = sp[i][1][0] * sp[i][1][1]
            k_in = out_kept.reshape(-1, hw).any(axis=1) | (i == 0)
            kept[i + 1] = np.repeat(k_in, hw)
        else:
            k_in = out_kept.copy()
        if i == 0:
            break  # graph inputs are never removed
        if not k_in.any():
            k_in[0] = True
        kept[i] = k_in
    # rebuild
    new_ops, units = [], {}
    nz_before = nz_after = total = 0
    for i, op in enumerate(ops):
        kin, kout = kept[i], kept[i + 1]
        if op.kind in ("linear", "conv"):
            w = op.params["weight"]
            total += w.size
            nz_before += int(np.count_nonzero(w))
            folded = fold[i] & ~kin
            b = op.params.get("bias")
            extra = w.astype(np.float64).reshape(w.shape[0], w.shape[1], -1).sum(axis=2)[:, folded] @ const[i][folded]
            params = {"weight": np.ascontiguousarray(w[kout][:, kin])}
            nz_after += int(np.count_nonzero(params["weight"]))
            if b is not None or np.any(extra[kout] != 0):
                base = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
                params["bias"] = (base + extra)[kout].astype(np.float32)
            units[op.name] = (len(kout), int(kout.sum()))
            new_ops.append(Op(op.kind, op.name, params, dict(op.attrs)))
        elif op.kind == "bn":
            new_ops.append(Op("bn", op.name, {n: v[kout] for n, v in op.params.items()}, dict(op.attrs)))
        else:
            new_ops.append(Op(op.kind, op.name, {}, dict(op.attrs)))
    # the output layer is never shrunk: drop it from the unit count
    last = [op.name for op in ops if op.kind in ("linear", "conv")][-1:]
    for name in last:
        units.pop(name, None)
    return new_ops, Compaction(units, total, nz_before, nz_after)


def compact_onnx(desc) -> tuple[onnx.ModelProto, Compaction]:
    """A Description -> its compacted dense ONNX graph (checked with full_check) and the compaction record."""
    from connpack.exporters.module import to_module

    ops = ops_from_module(to_module(desc))
    new_ops, info = compact(ops, desc.spec.model.in_shape)
    proto = to_onnx(new_ops, desc.spec.model.in_shape, doc="connpack compacted graph")
    onnx_file.check(proto, full_check=True)
    return proto, info


def build(graphs) -> tuple[onnx.ModelProto, str]:
    """(compacted graph, note) from a connpack.exporters.Graphs (the ``compact`` export kind)."""
    proto, info = graphs.compacted()
    return proto, (
        f"{info.units_removed:.1%} hidden units removed; effective sparsity "
        f"{info.effective_sparsity:.1%} (explicit {info.explicit_sparsity:.1%})"
    )
