"""Description <-> .cpk container (connpack.formats). The network-level layer of the file format.

meta = {"spec": NetworkSpec.compact_dict(), "t": {name: {"k": kind, "h": weight hash, "c": [c_neg, c_pos]}}}
arrays:  <name>          bool bits (mask or flip bits) or, for dense tensors, the values
         <name>:s        ternary: sign bits of the kept weights (True = positive)
         <name>:v        values: the kept values (float32, float16 or bfloat16)
         every other array is a dense tensor (bias, batch-norm statistics) stored as it is.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from connpack import formats
from connpack.description import Description, TensorCode
from connpack.errors import ConnpackError, FormatError, SpecError
from connpack.specs import NetworkSpec

VALUE_DTYPES = ("float32", "float16", "bfloat16")


def _cast_values(v: np.ndarray, dtype: str) -> np.ndarray:
    if dtype not in VALUE_DTYPES:
        raise SpecError(f"unknown value type '{dtype}' (choose from {', '.join(VALUE_DTYPES)})")
    if dtype == "bfloat16":
        import ml_dtypes

        return v.astype(ml_dtypes.bfloat16)
    return v.astype(dtype)


def to_container(desc: Description, values: str = "float32") -> formats.Container:
    meta_t: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, code in desc.tensors.items():
        entry: dict = {"k": code.kind}
        if name in desc.weight_hashes:
            entry["h"] = desc.weight_hashes[name]
        if code.kind == "dense":
            arrays[name] = code.values.astype(np.float32)
        else:
            arrays[name] = code.bits
        if code.kind == "ternary":
            arrays[f"{name}:s"] = code.signs
            entry["c"] = [float(np.float32(c)) for c in code.centroids]
        if code.kind == "values":
            arrays[f"{name}:v"] = _cast_values(code.values, values)
        meta_t[name] = entry
    for name, v in desc.dense.items():
        arrays[name] = np.ascontiguousarray(v)
    meta = {"spec": desc.spec.compact_dict(), "t": meta_t}
    return formats.Container(meta=meta, arrays=arrays)


def from_container(c: formats.Container) -> Description:
    try:
        spec = NetworkSpec.from_dict(c.meta["spec"])
        entries = c.meta["t"]
        if not isinstance(entries, dict):
            raise FormatError("meta.t must be an object")
        tensors, hashes, used = {}, {}, set()
        for name, entry in entries.items():
            kind = entry["k"]
            main = c.arrays[name]
            used.add(name)
            if kind == "dense":
                tensors[name] = TensorCode("dense", main.shape, values=main.astype(np.float32))
            else:
                kw = {}
                if kind == "ternary":
                    kw = {"signs": c.arrays[f"{name}:s"], "centroids": tuple(float(x) for x in entry["c"])}
                    used.add(f"{name}:s")
                if kind == "values":
                    kw = {"values": c.arrays[f"{name}:v"].astype(np.float32)}
                    used.add(f"{name}:v")
                tensors[name] = TensorCode(kind, main.shape, bits=main, **kw)
            if "h" in entry:
                hashes[name] = str(entry["h"])
        dense = {k: v for k, v in c.arrays.items() if k not in used}
    except FormatError:
        raise
    except ConnpackError as e:
        raise FormatError(f"invalid network description: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FormatError(f"invalid network description in header ({type(e).__name__}: {e})") from None
    return Description(spec, tensors, dense, hashes)


def pack(desc: Description, path: str | Path, codec: str = "auto", values: str = "float32") -> int:
    """Write ``desc`` as a .cpk file atomically; returns the file size in bytes."""
    return formats.write(path, to_container(desc, values), codec=codec)


def unpack(path: str | Path) -> Description:
    """Read and validate a .cpk file. Weight hashes are checked when the weights are materialised."""
    return from_container(formats.read(path))
