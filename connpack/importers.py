"""Import sparse PyTorch models that were not trained with connpack.

Two inputs give the same Description:

(a) a state_dict (or a checkpoint dict holding one) of a model pruned with ``torch.nn.utils.prune``: every
    pruned parameter ``p`` appears as ``p_orig`` + ``p_mask`` and its effective value is ``p_orig * p_mask``
    (the forward pre-hook of torch.nn.utils.prune; ``prune.remove`` materialises exactly that product);
(b) a plain state_dict whose pruned weights are zeros (after ``prune.remove``, or any other pruner).

The architecture is a registry name (``torchvision:resnet18``, ``connpack:conv6``, ...) or, when not given,
the one registered architecture whose tensor names and shapes match the file. Every connectivity-bearing
weight (each Conv2d/Linear weight of the architecture) becomes a TensorCode of kind "values" — the mask
(from ``*_mask`` when present, else ``W != 0``) and the kept values in C order — and every other tensor
(biases, batch norm) is kept dense, as it is, except batch norm's ``num_batches_tracked`` counter. The spec records the architecture with method "import".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from connpack import models
from connpack.description import Description, TensorCode
from connpack.errors import InputFileError, SpecError
from connpack.layers import conn_layers
from connpack.specs import ModelSpec, NetworkSpec

TORCHVISION_IN_SHAPE = (3, 224, 224)
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net")
ORIG, MASK = "_orig", "_mask"


# ------------------------------------------------------------------------------------------- reading input


def _is_tensor_dict(obj) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj, source: str = "input") -> dict[str, torch.Tensor]:
    """The state_dict in ``obj``: itself, or the dict under a usual checkpoint key; "module." prefixes
    (DataParallel) are removed."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    sd = obj if _is_tensor_dict(obj) else None
    if sd is None and isinstance(obj, Mapping):
        sd = next((obj[k] for k in CHECKPOINT_KEYS if _is_tensor_dict(obj.get(k))), None)
    if sd is None:
        raise InputFileError(
            f"{source}: not a connpack model file nor a state_dict of tensors "
            f"(or a checkpoint with one under {', '.join(CHECKPOINT_KEYS)})"
        )
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


def load_pt(path: str | Path):
    """torch.load(weights_only=True) with one-line errors (nothing in the file is executed)."""
    from connpack import ptfile

    return ptfile.load(path)


def is_torch_pruned(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.endswith(ORIG) and k[: -len(ORIG)] + MASK in sd for k in sd)


def merge_pruned(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Fold torch.nn.utils.prune's reparametrisation: ``p_orig``, ``p_mask`` -> ``p = p_orig * p_mask``.

    Returns (state_dict with the effective tensors, in the original key order; {p: boolean mask}).
    """
    out, masks = {}, {}
    for key, value in sd.items():
        if key.endswith(MASK) and key[: -len(MASK)] + ORIG in sd:
            continue
        if key.endswith(ORIG) and key[: -len(ORIG)] + MASK in sd:
            name = key[: -len(ORIG)]
            mask = sd[name + MASK]
            if mask.shape != value.shape:
                raise InputFileError(
                    f"'{name}{MASK}' has shape {tuple(mask.shape)} but '{key}' has {tuple(value.shape)}"
                )
            out[name] = value * mask
            masks[name] = mask != 0
        else:
            out[key] = value
    return out, masks


# ---------------------------------------------------------------------------------- architecture matching


def _shape(t) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _skeleton(model: ModelSpec) -> nn.Module:
    """The architecture with storage-free (meta) tensors: names and shapes only."""
    with torch.device("meta"):
        return models.build(NetworkSpec(model=model), generate=False)


def first_mismatch(expected: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor]) -> str | None:
    """A one-line description of the first tensor (in the architecture's order) that does not fit, or None.

    A missing ``num_batches_tracked`` is tolerated (it does not change the function)."""
    for key, ref in expected.items():
        if key not in sd:
            if key.endswith("num_batches_tracked"):
                continue
            return f"'{key}' is missing (architecture expects shape {_shape(ref)})"
        if _shape(sd[key]) != _shape(ref):
            return f"'{key}' has shape {_shape(sd[key])}, architecture expects {_shape(ref)}"
    for key, value in sd.items():
        if key not in expected:
            return f"unexpected tensor '{key}' of shape {_shape(value)}"
    return None


def _first_weight(sd: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    return next((v for k, v in sd.items() if k.endswith("weight") and v.dim() in (2, 4)), None)


def candidate_specs(arch: str, sd: Mapping[str, torch.Tensor], in_shape: tuple | None = None) -> Iterator[ModelSpec]:
    """ModelSpecs of ``arch`` that could fit ``sd``; num_classes comes from the final layer.

    torchvision: in_shape (C, 224, 224), C from the first convolution. connpack's own networks: inputs
    (C, 28, 28) then (C, 32, 32), with and without bias, each batch-norm setting, the width multiplier from
    the first layer's output size.
    """
    first = _first_weight(sd)
    channels = int(first.shape[1]) if first is not None and first.dim() == 4 else None
    if arch.startswith("torchvision:"):
        shapes = [in_shape or (channels or 3, *TORCHVISION_IN_SHAPE[1:])]
        knobs = [(False, "none")]
    else:
        shapes = (
            [in_shape]
            if in_shape
            else ([(channels, 28, 28), (channels, 32, 32)] if channels else [(1, 28, 28), (3, 32, 32)])
        )
        knobs = [(bias, bn) for bias in (False, True) for bn in ("none", "affine", "frozen")]
    for shape in shapes:
        for bias, bn in knobs:
            probe = ModelSpec(arch=arch, in_shape=shape, num_classes=10, bias=bias, batchnorm=bn)
            try:
                layers = conn_layers(_skeleton(probe))
            except SpecError:  # the input does not fit this architecture
                continue
            last = f"{layers[-1][0]}.weight"
            classes = int(sd[last].shape[0]) if last in sd and sd[last].dim() >= 1 else 10
            width = 1.0
            if first is not None and not arch.startswith("torchvision:"):  # connpack's width multiplier
                width = int(first.shape[0]) / int(layers[0][1].weight.shape[0])
            yield ModelSpec(
                arch=arch, in_shape=shape, num_classes=max(2, classes), width=width, bias=bias, batchnorm=bn
            )


def match_architecture(
    sd: Mapping[str, torch.Tensor],
    arch: str | ModelSpec | None = None,
    in_shape: tuple | None = None,
    source: str = "input",
) -> ModelSpec:
    """The ModelSpec whose tensors have exactly the names and shapes of ``sd`` (effective tensors).

    With ``arch`` a name, its candidate specs are tried and a mismatch raises InputFileError naming the
    first mismatching key and shape; with ``arch`` None every registered architecture is tried.
    """
    if isinstance(arch, ModelSpec):
        problem = first_mismatch(_skeleton(arch).state_dict(), sd)
        if problem:
            raise InputFileError(f"{source}: does not match architecture '{arch.arch}': {problem}")
        return arch
    if arch is not None:
        models.get(arch)  # unknown names fail here with the list of known ones
        arch = arch.removeprefix("connpack:")  # the spec records the canonical name
        first_problem = None
        for spec in candidate_specs(arch, sd, in_shape):
            try:
                problem = first_mismatch(_skeleton(spec).state_dict(), sd)
            except SpecError as e:  # the input shape does not fit the architecture
                problem = str(e)
            if problem is None:
                return spec
            first_problem = first_problem or problem
        raise InputFileError(
            f"{source}: does not match architecture '{arch}': "
            f"{first_problem or f'input shape {in_shape} does not fit it'}"
        )
    found = []
    for name in models.names():
        for spec in candidate_specs(name, sd, in_shape):
            try:
                if first_mismatch(_skeleton(spec).state_dict(), sd) is None:
                    found.append(spec)
                    break
            except SpecError:
                continue
    if len(found) != 1:
        what = (
            "no registered architecture" if not found else f"several architectures ({', '.join(s.arch for s in found)})"
        )
        raise InputFileError(
            f"{source}: not a connpack model file, and its tensors match {what}; "
            f"name the architecture (--arch, e.g. torchvision:resnet18)"
        )
    return found[0]


# ------------------------------------------------------------------------------------------- description


def describe(
    obj, *, arch: str | ModelSpec | None = None, in_shape: tuple | None = None, source: str = "input"
) -> Description:
    """A Description of a sparse PyTorch model: an nn.Module, a state_dict or a checkpoint dict.

    Connectivity-bearing weights -> kind "values" (mask + kept float32 values); everything else dense.
    """
    raw = extract_state_dict(obj, source)
    for key, value in raw.items():  # a cast to float32 would drop the imaginary part without a word
        if value.is_complex():
            raise InputFileError(
                f"{source}: tensor '{key}' is complex ({value.dtype}): connpack packs real tensors only"
            )
    pruned = is_torch_pruned(raw)
    sd, masks = merge_pruned(raw)
    model = match_architecture(sd, arch, in_shape, source)
    skeleton = _skeleton(model)
    conn = [f"{name}.weight" for name, _ in conn_layers(skeleton)]
    tensors: dict[str, TensorCode] = {}
    for key in conn:
        w = sd[key].detach().cpu().float().numpy()
        mask = masks[key].cpu().numpy() if key in masks else w != 0
        tensors[key] = TensorCode("values", w.shape, bits=np.ascontiguousarray(mask), values=w[mask])
    # num_batches_tracked is a training counter (no effect on the function); trainers drop it too
    dense = {
        key: sd[key].detach().cpu().contiguous().numpy().copy()
        for key in skeleton.state_dict()
        if key not in tensors and key in sd and not key.endswith("num_batches_tracked")
    }
    hparams = {"source": "torch.nn.utils.prune" if pruned else "state_dict"}
    return Description(NetworkSpec(model=model, method="import", hparams=hparams), tensors, dense)
