"""Materialise a Description as a plain PyTorch module (dense weights, no scores, no gates)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from connpack import models
from connpack.description import Description
from connpack.errors import ShapeMismatchError


def state_dict(desc: Description, verify: bool = True) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in desc.state_dict(verify=verify).items()}


def to_module(desc: Description, verify: bool = True) -> nn.Module:
    """The network in eval mode with its effective weights loaded (regenerated weights are hash-checked)."""
    model = models.build(desc.spec, generate=False)
    sd = state_dict(desc, verify=verify)
    own = model.state_dict()
    for key, value in own.items():
        if key.endswith("num_batches_tracked"):
            sd.setdefault(key, value)
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise ShapeMismatchError(
            f"tensors do not match architecture '{desc.spec.model.arch}': "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for key, value in own.items():
        if tuple(sd[key].shape) != tuple(value.shape):
            raise ShapeMismatchError(
                f"tensor '{key}' has shape {tuple(sd[key].shape)}, architecture expects {tuple(value.shape)}"
            )
    model.load_state_dict(sd)
    return model.eval()
