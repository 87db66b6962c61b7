"""The op IR of sequential networks: a chain of plain numpy ops that the compaction pass (compact) rewrites and
the ONNX builder (onnx_ops) serialises.

``ops_from_module`` turns an ``nn.Sequential`` (nested ones flattened) of Linear / Conv2d / BatchNorm / ReLU /
MaxPool2d / AdaptiveAvgPool2d(1) / Flatten (ConnLinear/ConnConv2d read through their effective weight) into a
list of ``Op``; anything else (residual blocks, concatenations, grouped convs) raises SpecError naming the
first such module. ``spaces`` gives the units (and spatial size) of the tensor between consecutive ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from connpack.errors import SpecError

KINDS = ("linear", "conv", "bn", "relu", "maxpool", "gap", "flatten")


@dataclass
class Op:
    kind: str
    name: str  # module name in the Sequential ("1" -> "1.weight")
    params: dict[str, np.ndarray] = field(default_factory=dict)  # weight, bias | mean, var, scale, shift
    attrs: dict = field(
        default_factory=dict
    )  # conv: stride, padding, dilation | pool: kernel, stride, padding | bn: eps


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
                ops.append(
                    Op(
                        "conv",
                        name,
                        params,
                        {"stride": _pair(m.stride), "padding": _pair(m.padding), "dilation": _pair(m.dilation)},
                    )
                )
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            ops.append(
                Op(
                    "bn",
                    name,
                    {
                        "mean": np_(m.running_mean),
                        "var": np_(m.running_var),
                        "scale": np_(m.weight) if m.affine else np.ones(n, np.float32),
                        "shift": np_(m.bias) if m.affine else np.zeros(n, np.float32),
                    },
                    {"eps": float(m.eps)},
                )
            )
        elif isinstance(m, nn.ReLU):
            ops.append(Op("relu", name))
        elif isinstance(m, nn.MaxPool2d):
            if m.ceil_mode or _pair(m.dilation) != (1, 1):
                raise SpecError(f"layer {name}: MaxPool2d with ceil_mode or dilation is not supported")
            k = _pair(m.kernel_size)
            ops.append(
                Op("maxpool", name, attrs={"kernel": k, "stride": _pair(m.stride or k), "padding": _pair(m.padding)})
            )
        elif isinstance(m, nn.AdaptiveAvgPool2d) and _pair(m.output_size) == (1, 1):
            ops.append(Op("gap", name))
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise SpecError(f"layer {name}: only Flatten(start_dim=1) is supported")
            ops.append(Op("flatten", name))
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise SpecError(
                f"layer {name} ({type(m).__name__}) is not part of a plain Linear/Conv2d/BN/ReLU/"
                "MaxPool/GlobalAvgPool/Flatten chain (residual blocks are not compacted)"
            )
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
            cur = (
                wt.shape[0],
                _out_hw(hw, wt.shape[2:], op.attrs["stride"], op.attrs["padding"], op.attrs["dilation"]),
            )
        elif op.kind == "maxpool":
            cur = (n, _out_hw(hw, op.attrs["kernel"], op.attrs["stride"], op.attrs["padding"]))
        elif op.kind == "gap":
            cur = (n, (1, 1))
        elif op.kind == "flatten":
            cur = (n * (hw[0] * hw[1] if hw else 1), None)
        out.append(cur)
    return out
