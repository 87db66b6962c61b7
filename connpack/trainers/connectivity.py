"""Connectivity over fixed random weights: Ivan & Florian's pruning/flipping, edge-popup, the dense baseline.

Ivan & Florian (section 2, 3):
    prune:  W * m(t),  m(t) = 1[t > 0]          minimal: L = L_free - mean(m(t))         (Eq. 3, 4)
    flip:   W * f(t),  f(t) = sign(t)            minimal: L = L_free - mean(f(t))   (fewest flipped signs)
    t starts uniform in (0, 0.1], so every connection starts on / unflipped.
edge-popup (Ramanujan et al., section 3, Algorithm 1):
    W * h(|s|), h = 1 on the top fraction k of each layer; scores s ~ Kaiming uniform (section 4.1).
Gates use the straight-through estimator (connpack.layers). Only t / s are trained; W stays as generated.
What these methods share is ``trainers.gated.Gated`` (one module each: baseline, prune, flip, edgepopup);
this module holds their torch side: ``stats``, ``describe``.
Weight removal (Ivan & Florian section 2.3, Eq. 6): ``remove_weights``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from connpack.description import Description, TensorCode
from connpack.layers import conn_layers
from connpack.errors import SpecError
from connpack.specs import NetworkSpec


@torch.no_grad()
def stats(model: nn.Module) -> dict:
    """Fraction of weights pruned (prune/topk) or flipped (flip) over the whole network."""
    layers = conn_layers(model)
    if not layers or layers[0][1].mode == "dense":
        return {}
    total = sum(layer.weight.numel() for _, layer in layers)
    ones = sum(int(layer.connectivity().sum()) for _, layer in layers)
    if layers[0][1].mode == "flip":
        return {"flipped": ones / total}
    return {"pruned": 1.0 - ones / total}


@torch.no_grad()
def describe(model: nn.Module, spec: NetworkSpec) -> Description:
    """The trained network as a Description: mask or flip bits over the generated weights, or dense values."""
    tensors: dict[str, TensorCode] = {}
    conn_names = set()
    for name, layer in conn_layers(model):
        key = f"{name}.weight"
        conn_names.add(key)
        shape = tuple(layer.weight.shape)
        if layer.mode == "dense":
            tensors[key] = TensorCode("dense", shape, values=layer.weight.detach().cpu().numpy().astype(np.float32))
        else:
            kind = "flip" if layer.mode == "flip" else "mask"
            tensors[key] = TensorCode(kind, shape, bits=layer.connectivity().cpu().numpy())
    dense = {
        k: v.detach().cpu().numpy()
        for k, v in model.state_dict().items()
        if k not in conn_names and not k.endswith(".scores") and not k.endswith("num_batches_tracked")
    }
    desc = Description(spec, tensors, dense)
    desc.record_hashes(desc.generated())
    return desc


@torch.no_grad()
def remove_weights(model: nn.Module) -> tuple[nn.Module, float]:
    """Weight removal (Ivan & Florian section 2.3): constant-magnitude layers -> unit-magnitude signs + input scale.

    With w^l_ij = |w^l| s^l_ij and ReLU's positive homogeneity, max(0, a x) = a max(0, x), every layer's
    magnitude factors out (Eq. 5), so  net_W(x) = net_S(x * prod_l |w^l|)  (Eq. 6), where net_S has the
    same masks/flips over weights +-1. Returns (a copy of ``model`` with unit-magnitude weights, prod_l |w^l|).
    Needs no biases and no batch norm (neither is homogeneous); max/avg pooling and flatten are fine.
    """
    import copy

    from torch.nn.modules.batchnorm import _BatchNorm

    unit = copy.deepcopy(model)
    scale = 1.0
    for name, layer in conn_layers(unit):
        if layer.bias is not None:
            raise SpecError(f"weight removal needs a network without biases ('{name}' has one)")
        mag = layer.weight.abs()
        if mag.numel() and not bool((mag == mag.reshape(-1)[0]).all()):
            raise SpecError(f"weight removal needs constant-magnitude weights (signed_constant); '{name}' varies")
        a = float(mag.reshape(-1)[0]) if mag.numel() else 1.0
        layer.weight.copy_(torch.sign(layer.weight))
        scale *= a
    if any(isinstance(m, _BatchNorm) for m in unit.modules()):
        raise SpecError("weight removal needs a network without batch norm")
    return unit, scale
