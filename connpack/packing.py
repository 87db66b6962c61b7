"""Description <-> .cpk container (connpack.formats). The network-level layer of the file format.

meta = {"spec": NetworkSpec.compact_dict(),
        "t": {name: {"i": tensor index, "k": kind, "h": weight hash (mask/flip), "c": [c_neg, c_pos] (ternary),
                     "o": "g" (bits stored in the order of |generated weight|, when that codes smaller)}}}
arrays:  <name>          bool bits (mask or flip bits) or, for dense tensors, the values
         <name>:s        ternary: sign bits of the kept weights (True = positive)
         <name>:v        values: the kept values (float32, float16 or bfloat16)
         every other array is a dense tensor (bias, batch-norm statistics) stored as it is.

The tensor index "i" (the RNG stream of the tensor's generated weight, connpack.rng) is stored explicitly:
the header is canonical JSON with sorted keys, so the order of "t" is the names' sort order, not the model's.
Normative text: formats/cpk.md section 7.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from connpack import formats, rng
from connpack.description import KINDS, USES_GENERATED, Description, TensorCode
from connpack.errors import ConnpackError, FormatError, ShapeMismatchError, SpecError, UnknownFieldError
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec

VALUE_DTYPES = ("float32", "float16", "bfloat16")


def _cast_values(v: np.ndarray, dtype: str) -> np.ndarray:
    if dtype not in VALUE_DTYPES:
        raise SpecError(f"unknown value type '{dtype}' (choose from {', '.join(VALUE_DTYPES)})")
    if dtype == "bfloat16":
        import ml_dtypes

        return v.astype(ml_dtypes.bfloat16)
    return v.astype(dtype)


MAGNITUDE_INITS = ("kaiming_normal", "xavier_normal", "kaiming_uniform")  # |G| differs between weights


def magnitude_order(g: np.ndarray) -> np.ndarray:
    """The "g" order of a tensor's elements (cpk.md 7.2): stable sort by key = (float32 bits of |G|) >> 16,
    i.e. by |G| at 1/128-octave resolution, ties in C order. Exact integers, so every reader finds it; a
    radix sort, so it is linear in the size."""
    key = (np.abs(np.asarray(g, dtype=np.float32)).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
    return np.argsort(key.ravel(), kind="stable")


def _generated(desc: Description, name: str, index: int) -> np.ndarray:
    return rng.generate(desc.spec.init_for(name), desc.spec.rng.seed, index, desc.tensors[name].shape)


def to_container(desc: Description, values: str = "float32", codec: str = "auto") -> formats.Container:
    """The container of ``desc`` (cpk.md 7). A bit section over a weight drawn with varying magnitudes is
    stored in the |G| order (entry "o": "g") when that codes smaller with ``codec``: magnitude pruning
    rewound to the initial weights (IMP, ASNI) keeps mostly the weights that were large at init, so in that
    order the mask's density rises steadily and the context codec's row classes capture it."""
    meta_t: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    missing = [n for n, c in desc.tensors.items() if c.kind in USES_GENERATED and n not in desc.weight_hashes]
    hashes = dict(desc.weight_hashes)
    if missing:  # every regenerated weight gets its hash, so unpack can refuse a wrong regeneration
        hashes.update({n: rng.tensor_hash(w) for n, w in desc.generated().items() if n in missing})
    for index, (name, code) in enumerate(desc.tensors.items()):
        entry: dict = {"i": index, "k": code.kind}
        if code.kind in USES_GENERATED:
            entry["h"] = hashes[name]
        if code.kind == "dense":
            arrays[name] = code.values.astype(np.float32)
        else:
            arrays[name] = code.bits
            if desc.spec.init_for(name).dist in MAGNITUDE_INITS and code.bits.size > 1:
                ordered = code.bits.ravel()[magnitude_order(_generated(desc, name, index))].reshape(code.shape)
                if formats.coded_size(ordered, codec) < formats.coded_size(code.bits, codec):
                    arrays[name], entry["o"] = ordered, "g"
        if code.kind == "ternary":
            arrays[f"{name}:s"] = code.signs
            entry["c"] = [float(np.float32(c)) for c in code.centroids]
        if code.kind == "values":
            arrays[f"{name}:v"] = _cast_values(code.values, values)
        meta_t[name] = entry
    for name, v in desc.dense.items():
        arrays[name] = np.asarray(v, order="C")  # keeps 0-d tensors 0-d
    meta = {"spec": desc.spec.compact_dict(), "t": meta_t}
    return formats.Container(meta=meta, arrays=arrays)


META_KEYS = ("spec", "t")
ENTRY_KEYS = ("c", "h", "i", "k", "o")
SPEC_KEYS = {"model": ModelSpec, "rng": RngSpec, "init": InitSpec, "method": None, "inits": InitSpec,
             "hparams": None}


def _known_fields(obj, allowed, where: str) -> None:
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object")
    extra = sorted(set(obj) - set(allowed))
    if extra:
        raise UnknownFieldError(f"unknown field(s) {', '.join(map(repr, extra))} in {where}")


def _check_spec_fields(spec) -> None:
    """Only the fields NetworkSpec.compact_dict() writes (cpk.md 7.1); anything else is an unknown field."""
    _known_fields(spec, SPEC_KEYS, "meta.spec")
    if "hparams" in spec:  # edge-popup's k, the only method setting a rebuild records (cpk.md 7.1)
        hp = spec["hparams"]
        _known_fields(hp, ["k"], "meta.spec.hparams")
        if not isinstance(hp.get("k"), (int, float)) or not 0 < hp["k"] <= 1:
            raise FormatError("meta.spec.hparams.k must be a number in (0, 1]")
    for key, cls in SPEC_KEYS.items():
        if cls is None or key not in spec:
            continue
        allowed = [f.name for f in fields(cls)]
        if key == "inits":
            if not isinstance(spec[key], dict):
                raise FormatError("meta.spec.inits must be a JSON object")
            for name, init in spec[key].items():
                _known_fields(init, allowed, f"meta.spec.inits[{name!r}]")
        else:
            _known_fields(spec[key], allowed, f"meta.spec.{key}")


def _entries(meta) -> list[tuple[str, dict]]:
    """meta.t as (name, entry) pairs in tensor-index order, every field checked (cpk.md 7.2)."""
    _known_fields(meta, META_KEYS, "meta")
    for key in META_KEYS:
        if key not in meta:
            raise FormatError(f"meta lacks the field {key!r}")
    _check_spec_fields(meta["spec"])
    if not isinstance(meta["t"], dict):
        raise FormatError("meta.t must be a JSON object")
    out = []
    for name, e in meta["t"].items():
        _known_fields(e, ENTRY_KEYS, f"meta.t[{name!r}]")
        kind, index = e.get("k"), e.get("i")
        if kind not in KINDS:
            raise FormatError(f"tensor {name!r}: unknown kind {kind!r:.40}")
        if not isinstance(index, int) or isinstance(index, bool):
            raise FormatError(f"tensor {name!r}: index {index!r:.40} is not an integer")
        h = e.get("h")
        if (h is not None) != (kind in USES_GENERATED):
            raise FormatError(f"tensor {name!r}: a weight hash belongs to mask/flip tensors only, and they need one")
        if h is not None and (not isinstance(h, str) or len(h) != 16 or h.strip("0123456789abcdef")):
            raise FormatError(f"tensor {name!r}: weight hash {h!r:.40} is not 16 lowercase hex digits")
        cen = e.get("c")
        if (cen is not None) != (kind == "ternary"):
            raise FormatError(f"tensor {name!r}: centroids belong to ternary tensors only, and they need them")
        if cen is not None and not (isinstance(cen, list) and len(cen) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in cen)):
            raise FormatError(f"tensor {name!r}: centroids {cen!r:.60} are not two numbers")
        if "o" in e and (e["o"] != "g" or kind == "dense"):
            raise FormatError(f"tensor {name!r}: order {e['o']!r:.20} invalid (\"g\", on bit sections only)")
        out.append((name, e))
    out.sort(key=lambda ne: ne[1]["i"])
    if [e["i"] for _, e in out] != list(range(len(out))):
        raise FormatError("tensor indices in meta.t are not 0, 1, ..., n-1 (each once)")
    return out


def _section(c: formats.Container, name: str, kinds: str, shape: tuple | None = None) -> np.ndarray:
    """The section ``name``; its dtype kind must be in ``kinds`` ("b": bool, "f": float) and its shape ``shape``."""
    if name not in c.arrays:
        raise FormatError(f"tensor section {name!r} is missing")
    a = c.arrays[name]
    kind = "f" if a.dtype.name == "bfloat16" else a.dtype.kind
    if kind not in kinds:
        raise FormatError(f"section {name!r} has dtype {a.dtype}, expected {'bool' if kinds == 'b' else 'float'}")
    if shape is not None and a.shape != shape:
        raise ShapeMismatchError(f"section {name!r} has shape {a.shape}, its tensor needs {shape}")
    return a


def from_container(c: formats.Container) -> Description:
    """The Description in a decoded container; every meta field and section is checked (cpk.md 7)."""
    entries = _entries(c.meta)
    try:
        spec = NetworkSpec.from_dict(c.meta["spec"])
        tensors, hashes, used = {}, {}, set()
        for name, entry in entries:
            kind = entry["k"]
            used.add(name)
            if kind == "dense":
                main = _section(c, name, "f")
                tensors[name] = TensorCode("dense", main.shape, values=main.astype(np.float32))
                continue
            main = _section(c, name, "b")
            if entry.get("o") == "g":  # stored in |G| order: put every bit back at its position
                g = rng.generate(spec.init_for(name), spec.rng.seed, entry["i"], main.shape)
                flat = np.empty(main.size, dtype=bool)
                flat[magnitude_order(g)] = main.ravel()
                main = flat.reshape(main.shape)
            kept = (int(np.count_nonzero(main)),)
            kw = {}
            if kind == "ternary":
                kw = {"signs": _section(c, f"{name}:s", "b", kept), "centroids": tuple(float(x) for x in entry["c"])}
                used.add(f"{name}:s")
            if kind == "values":
                kw = {"values": _section(c, f"{name}:v", "f", kept).astype(np.float32)}
                used.add(f"{name}:v")
            tensors[name] = TensorCode(kind, main.shape, bits=main, **kw)
            if "h" in entry:
                hashes[name] = entry["h"]
        dense = {k: v for k, v in c.arrays.items() if k not in used}
        stray = [k for k in dense if ":" in k]
        if stray:
            raise FormatError(f"section {stray[0]!r} belongs to no tensor in meta.t")
    except FormatError:
        raise
    except ConnpackError as e:
        raise FormatError(f"invalid network description: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FormatError(f"invalid network description in header ({type(e).__name__}: {e})") from None
    return Description(spec, tensors, dense, hashes)


def architecture_shapes(spec: NetworkSpec) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """(connectivity weight names in tensor-index order, {state_dict key: shape}) of ``spec``'s architecture.

    Built on PyTorch's meta device: no memory, no weights, a few milliseconds for small networks.
    """
    import torch

    from connpack import models
    from connpack.layers import conn_layers

    with torch.device("meta"):
        model = models.get(spec.model.arch)(spec.model)
    names = [f"{n}.weight" for n, _ in conn_layers(model)]
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    return names, shapes


def check_architecture(desc: Description) -> None:
    """Refuse (ShapeMismatchError) a description whose tensors are not exactly the architecture's.

    The i-th tensor must be the architecture's i-th connectivity weight (its RNG stream is i), and every
    tensor (connectivity weights and dense tensors) must exist there with the same shape.
    """
    try:
        names, shapes = architecture_shapes(desc.spec)
    except SpecError as e:
        raise FormatError(f"cannot rebuild the architecture: {e}") from None
    ours = {**{n: c.shape for n, c in desc.tensors.items()}, **{n: tuple(np.shape(v)) for n, v in desc.dense.items()}}
    if list(desc.tensors) != names:
        bad = next((i for i, (a, b) in enumerate(zip(list(desc.tensors), names)) if a != b), min(len(names), len(desc.tensors)))
        got = list(desc.tensors)[bad] if bad < len(desc.tensors) else "nothing"
        want = names[bad] if bad < len(names) else "nothing"
        raise ShapeMismatchError(f"tensor index {bad} is {got!r}, architecture '{desc.spec.model.arch}' has {want!r}")
    missing, unexpected = sorted(set(shapes) - set(ours)), sorted(set(ours) - set(shapes))
    if missing or unexpected:
        raise ShapeMismatchError(f"tensors do not match architecture '{desc.spec.model.arch}': "
                                 f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    for key, shape in shapes.items():
        if ours[key] != shape:
            raise ShapeMismatchError(f"tensor {key!r} has shape {ours[key]}, architecture "
                                     f"'{desc.spec.model.arch}' expects {shape}")


def pack(desc: Description, path: str | Path, codec: str = "auto", values: str = "float32") -> int:
    """Write ``desc`` as a .cpk file atomically; returns the file size in bytes."""
    return formats.write(path, to_container(desc, values, codec), codec=codec)


def unpack(path: str | Path, *, check: bool = True) -> Description:
    """Read and validate a .cpk file; with ``check`` the tensors must fit the architecture (check_architecture).

    Weight hashes are checked when the weights are materialised (Description.state_dict).
    """
    desc = from_container(formats.read(path))
    if check:
        check_architecture(desc)
    return desc
