"""The trainer's output file (``model.pt``): a Description + metrics, readable with weights_only=True.

Layout (a plain dict of str, int, JSON strings and tensors — no pickled objects):
    {"connpack": "run", "version": 1, "spec": <NetworkSpec JSON>, "kinds": <JSON {name: kind}>,
     "tensors": {"<name>/bits" | "<name>/signs" | "<name>/values" | "<name>/centroids": tensor},
     "dense": {name: tensor}, "metrics": <JSON list of per-epoch dicts>,
     "data": <JSON data contract (connpack.contract), optional>}

The data contract is the Description's, else the registry's for the dataset the trainer recorded in
``spec.hparams["dataset"]`` (run files written before the record existed read the same way).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from connpack import atomic, contract, data, ptfile
from connpack.contract import DataContract
from connpack.description import Description, TensorCode
from connpack.errors import ConnpackError, InputFileError
from connpack.specs import NetworkSpec

RUN_VERSION = 1


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _contract(desc: Description) -> DataContract | None:
    if desc.data is not None:
        return desc.data
    name = desc.spec.hparams.get("dataset")
    if isinstance(name, str) and name in data.DATASETS:
        return data.contract(name)
    return None


def save(path: str | Path, desc: Description, metrics: list[dict] | None = None) -> None:
    """Write the run file atomically (see connpack.atomic)."""
    with atomic.atomic_path(path) as tmp:
        dump(tmp, desc, metrics)


def dump(path: str | Path, desc: Description, metrics: list[dict] | None = None) -> None:
    """Write the run file to ``path`` as it is (a temp file of connpack.atomic; ``save`` is the atomic one)."""
    tensors: dict[str, torch.Tensor] = {}
    kinds = {}
    for name, code in desc.tensors.items():
        kinds[name] = code.kind
        if code.bits is not None:
            tensors[f"{name}/bits"] = torch.from_numpy(np.ascontiguousarray(code.bits))
        if code.signs is not None:
            tensors[f"{name}/signs"] = torch.from_numpy(np.ascontiguousarray(code.signs))
        if code.values is not None:
            tensors[f"{name}/values"] = torch.from_numpy(np.ascontiguousarray(code.values))
        if code.centroids is not None:
            tensors[f"{name}/centroids"] = torch.tensor(code.centroids, dtype=torch.float32)
    obj = {
        "connpack": "run",
        "version": RUN_VERSION,
        "spec": desc.spec.to_json(),
        "kinds": json.dumps(kinds),
        "tensors": tensors,
        "dense": {k: torch.from_numpy(np.asarray(v, order="C")) for k, v in desc.dense.items()},
        "metrics": json.dumps(metrics or []),
    }
    record = _contract(desc)
    if record is not None:
        record.fits(desc.spec.model.in_shape, desc.spec.model.num_classes)
        obj["data"] = json.dumps(record.to_meta())
    ptfile.save(obj, path)


def load(path: str | Path) -> tuple[Description, list[dict]]:
    path = Path(path)
    obj = ptfile.load(path, what="connpack model file")
    if not isinstance(obj, dict) or obj.get("connpack") != "run":
        raise InputFileError(f"{path}: not a connpack model file (train one with `connpack train`)")
    if obj.get("version") != RUN_VERSION:
        raise InputFileError(f"{path}: unsupported model file version {obj.get('version')}")
    try:
        spec = NetworkSpec.from_json(obj["spec"])
        kinds = json.loads(obj["kinds"])
        t = obj["tensors"]
        tensors = {}
        for name, kind in kinds.items():
            get = lambda key: _np(t[f"{name}/{key}"]) if f"{name}/{key}" in t else None  # noqa: E731
            bits, signs, values, cent = get("bits"), get("signs"), get("values"), get("centroids")
            shape = bits.shape if bits is not None else values.shape
            tensors[name] = TensorCode(
                kind,
                shape,
                bits=bits,
                signs=signs,
                values=values,
                centroids=None if cent is None else (float(cent[0]), float(cent[1])),
            )
        dense = {k: _np(v) for k, v in obj["dense"].items()}
        metrics = json.loads(obj["metrics"])
        desc = Description(spec, tensors, dense)
        if "data" in obj:
            desc.data = contract.from_meta(json.loads(obj["data"]), spec.model.in_shape, spec.model.num_classes)
        else:
            desc.data = _contract(desc)
    except ConnpackError as e:
        raise InputFileError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputFileError(f"{path}: malformed connpack model file ({type(e).__name__}: {e})") from None
    return desc, metrics
