"""Ivan & Florian: free/minimal pruning and free/minimal flipping over fixed random weights; the dense baseline.

prune:  W * m(t),  m(t) = 1[t > 0]          minimal: L = L_free - mean(m(t))         (Eq. 3, 4)
flip:   W * f(t),  f(t) = sign(t)            minimal: L = L_free - mean(f(t))   (fewest flipped signs)
t starts uniform in (0, 0.1], so every connection starts on / unflipped. Gates use the straight-through
estimator (connpack.layers). Only t is trained; W stays as generated.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from connpack import rng
from connpack.description import Description, TensorCode
from connpack.layers import conn_layers
from connpack.specs import NetworkSpec

MODE = {"baseline": "dense", "prune": "prune", "flip": "flip", "edge-popup": "topk"}


def configure(model: nn.Module, spec: NetworkSpec, method: str, k: float = 1.0) -> None:
    """Switch every connectivity layer to the method's mode; scores t ~ U(0, 0.1] from the RNG (stream 1)."""
    for index, (_, layer) in enumerate(conn_layers(model)):
        w = layer.weight.detach().clone()
        shape = tuple(w.shape)
        if method == "edge-popup":
            # Ramanujan et al.: scores initialised Kaiming uniform (a = sqrt(5), as nn.Linear's default).
            from connpack.specs import InitSpec

            s = rng.generate(InitSpec("kaiming_uniform", gain=float(np.sqrt(2.0 / 6.0))), spec.rng.seed, index, shape,
                             stream=rng.STREAM_SCORES)
        else:
            s = rng.scores_uniform(spec.rng.seed, index, shape, 0.0, 0.1)
        layer.configure(MODE[method], w, torch.from_numpy(np.ascontiguousarray(s)), k=k)


def regularizer(method: str, variant: str):
    """The minimal variants' term: minus the mean gate value over all M weights of the network."""
    if variant != "minimal" or method not in ("prune", "flip"):
        return None

    def term(model: nn.Module) -> torch.Tensor:
        gates = [layer.gate() for _, layer in conn_layers(model)]
        m = sum(g.numel() for g in gates)
        return -sum(g.sum() for g in gates) / m

    return term


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
