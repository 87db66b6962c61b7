"""Sequential networks as plain numpy ops, structural compaction, and an ONNX builder for them.

``ops_from_module`` turns an ``nn.Sequential`` (nested ones flattened) of Linear / Conv2d / BatchNorm / ReLU /
MaxPool2d / AdaptiveAvgPool2d(1) / Flatten (ConnLinear/ConnConv2d read through their effective weight) into a
list of ``Op``.

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
networks raise SpecError from ``ops_from_module``; export them densely.

``to_onnx`` writes a list of ops as an opset-18 graph with a dynamic batch dimension; ``weight`` lets the
self-decoding exporter replace how a Linear/Conv2d weight is stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from connpack.errors import SpecError

OPSET = 18
KINDS = ("linear", "conv", "bn", "relu", "maxpool", "gap", "flatten")


@dataclass
class Op:
    kind: str
    name: str                                        # module name in the Sequential ("1" -> "1.weight")
    params: dict[str, np.ndarray] = field(default_factory=dict)  # weight, bias | mean, var, scale, shift
    attrs: dict = field(default_factory=dict)        # conv: stride, padding, dilation | pool: kernel, stride, padding | bn: eps


@dataclass(frozen=True)
class Compaction:
    """Units kept per hidden space (after each Linear/Conv2d), and the weights left."""

    units: dict[str, tuple[int, int]]   # layer name -> (units before, units kept)
    weights_before: int                 # all Linear/Conv2d weights
    nonzero_before: int                 # explicitly kept (non-zero) weights
    nonzero_after: int                  # non-zero weights left in the compacted graph

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


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def ops_from_module(model) -> list[Op]:
    """The plain chain of ops of an eval-mode ``nn.Sequential``; SpecError names the first unsupported module."""
    from torch import nn

    from connpack.layers import ConnMixin

    if not isinstance(model, nn.Sequential):
        raise SpecError(f"only sequential networks can be compacted or self-decoded, not {type(model).__name__}")
    def chain(seq: nn.Sequential, prefix: str = ""):
        for name, m in seq.named_children():
            if isinstance(m, nn.Sequential):  # nested chains (VGG's features/classifier) are one chain
                yield from chain(m, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", m

    ops: list[Op] = []
    for name, m in chain(model):
        np_ = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            w = m.effective_weight() if isinstance(m, ConnMixin) else m.weight
            params = {"weight": np_(w)}
            if m.bias is not None:
                params["bias"] = np_(m.bias)
            if isinstance(m, nn.Linear):
                ops.append(Op("linear", name, params))
            else:
                if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise SpecError(f"layer {name}: grouped, string-padded or non-zero-padded convs are not supported")
                ops.append(Op("conv", name, params, {"stride": _pair(m.stride), "padding": _pair(m.padding),
                                                     "dilation": _pair(m.dilation)}))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            ops.append(Op("bn", name, {"mean": np_(m.running_mean), "var": np_(m.running_var),
                                       "scale": np_(m.weight) if m.affine else np.ones(n, np.float32),
                                       "shift": np_(m.bias) if m.affine else np.zeros(n, np.float32)},
                          {"eps": float(m.eps)}))
        elif isinstance(m, nn.ReLU):
            ops.append(Op("relu", name))
        elif isinstance(m, nn.MaxPool2d):
            if m.ceil_mode or _pair(m.dilation) != (1, 1):
                raise SpecError(f"layer {name}: MaxPool2d with ceil_mode or dilation is not supported")
            k = _pair(m.kernel_size)
            ops.append(Op("maxpool", name, attrs={"kernel": k, "stride": _pair(m.stride or k),
                                                   "padding": _pair(m.padding)}))
        elif isinstance(m, nn.AdaptiveAvgPool2d) and _pair(m.output_size) == (1, 1):
            ops.append(Op("gap", name))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise SpecError(f"layer {name}: only Flatten(start_dim=1) is supported")
            ops.append(Op("flatten", name))
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise SpecError(f"layer {name} ({type(m).__name__}) is not part of a plain Linear/Conv2d/BN/ReLU/"
                            "MaxPool/GlobalAvgPool/Flatten chain (residual blocks are not compacted)")
    return ops


def _out_hw(hw: tuple[int, int], k, s, p, d=(1, 1)) -> tuple[int, int]:
    return tuple((hw[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))


def spaces(ops: list[Op], in_shape: tuple[int, ...]) -> list[tuple[int, tuple[int, int] | None]]:
    """(units, spatial size or None) of the tensor before op 0, between ops, and after the last op."""
    c, h, w = in_shape
    cur: tuple[int, tuple[int, int] | None] = (c, (h, w))
    out = [cur]
    for op in ops:
        n, hw = cur
        if op.kind == "linear":
            cur = (op.params["weight"].shape[0], None)
        elif op.kind == "conv":
            wt = op.params["weight"]
            cur = (wt.shape[0], _out_hw(hw, wt.shape[2:], op.attrs["stride"], op.attrs["padding"], op.attrs["dilation"]))
        elif op.kind == "maxpool":
            cur = (n, _out_hw(hw, op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]))
        elif op.kind == "gap":
            cur = (n, (1, 1))
        elif op.kind == "flatten":
            cur = (n * (hw[0] * hw[1] if hw else 1), None)
        out.append(cur)
    return out


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
            extra = (w.astype(np.float64).reshape(w.shape[0], w.shape[1], -1).sum(axis=2)[:, folded]
                     @ const[i][folded])
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


# ---------------------------------------------------------------------------------------------- ONNX

WeightFn = Callable[[Op, list, list], str]


def _dense_weight(op: Op, nodes: list, inits: list) -> str:
    name = f"{op.name}.weight"
    inits.append(numpy_helper.from_array(op.params["weight"], name))
    return name


def to_onnx(ops: list[Op], in_shape: tuple[int, ...], weight: WeightFn = _dense_weight,
            doc: str = "", opset: int = OPSET) -> onnx.ModelProto:
    """The chain as an ONNX graph: input [batch, *in_shape] -> logits [batch, classes]."""
    nodes: list = []
    inits: list = []
    x = "input"

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    for i, op in enumerate(ops):
        y = "logits" if i == len(ops) - 1 else f"/{op.name}/{op.kind}"
        if op.kind in ("linear", "conv"):
            ins = [x, weight(op, nodes, inits)]
            if "bias" in op.params:
                ins.append(init(f"{op.name}.bias", op.params["bias"]))
            if op.kind == "linear":
                nodes.append(helper.make_node("Gemm", ins, [y], name=f"{op.name}/Gemm", transB=1))
            else:
                p, wshape = op.attrs["padding"], op.params["weight"].shape
                nodes.append(helper.make_node("Conv", ins, [y], name=f"{op.name}/Conv", kernel_shape=list(wshape[2:]),
                                              strides=list(op.attrs["stride"]), dilations=list(op.attrs["dilation"]),
                                              pads=[p[0], p[1], p[0], p[1]]))
        elif op.kind == "bn":
            ins = [x] + [init(f"{op.name}.{n}", op.params[n]) for n in ("scale", "shift", "mean", "var")]
            nodes.append(helper.make_node("BatchNormalization", ins, [y], name=f"{op.name}/BN", epsilon=op.attrs["eps"]))
        elif op.kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [y], name=f"{op.name}/Relu"))
        elif op.kind == "maxpool":
            p = op.attrs["padding"]
            nodes.append(helper.make_node("MaxPool", [x], [y], name=f"{op.name}/MaxPool",
                                          kernel_shape=list(op.attrs["kernel"]), strides=list(op.attrs["stride"]),
                                          pads=[p[0], p[1], p[0], p[1]]))
        elif op.kind == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", [x], [y], name=f"{op.name}/GlobalAveragePool"))
        elif op.kind == "flatten":
            nodes.append(helper.make_node("Flatten", [x], [y], name=f"{op.name}/Flatten", axis=1))
        x = y
    n_out = spaces(ops, in_shape)[-1][0]
    graph = helper.make_graph(
        nodes, "connpack", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *in_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="connpack",
                              doc_string=doc)
    model.ir_version = 9
    return model


def compact_onnx(desc) -> tuple[onnx.ModelProto, Compaction]:
    """A Description -> its compacted dense ONNX graph (checked with full_check) and the compaction record."""
    from connpack.exporters.module import to_module

    ops = ops_from_module(to_module(desc))
    new_ops, info = compact(ops, desc.spec.model.in_shape)
    proto = to_onnx(new_ops, desc.spec.model.in_shape, doc="connpack compacted graph")
    onnx.checker.check_model(proto, full_check=True)
    return proto, info


def build(graphs) -> tuple[onnx.ModelProto, str]:
    """(compacted graph, note) from a connpack.exporters.Graphs (the ``compact`` export kind)."""
    proto, info = graphs.compacted()
    return proto, (f"{info.units_removed:.1%} hidden units removed; effective sparsity "
                   f"{info.effective_sparsity:.1%} (explicit {info.explicit_sparsity:.1%})")
