"""Description <-> .cpk container (connpack.formats). The network-level layer of the file format.

meta = {"spec": NetworkSpec.compact_dict(),
        "t": {name: {"i": tensor index, "k": kind, "h": weight hash (mask/flip), "c": [c_neg, c_pos] (ternary),
                     "o": "g" (bits stored in the order of |generated weight|, when that codes smaller)}},
        "data": DataContract.to_meta() (optional: dataset, mean, std, range, classes; connpack.contract)}
arrays:  <name>          bool bits (mask or flip bits) or, for dense tensors, the values
         <name>:s        ternary: sign bits of the kept weights (True = positive)
         <name>:v        values: the kept values (float32, float16 or bfloat16), or their quantisation indices
                         (int32; then <name>:q holds the float32 steps, <name>:a the seed-prediction coefficient;
                         connpack.values)
         every other array is a dense tensor (bias, batch-norm statistics) stored as it is.

The tensor index "i" (the RNG stream of the tensor's generated weight, connpack.rng) is stored explicitly:
the header is canonical JSON with sorted keys, so the order of "t" is the names' sort order, not the model's.
Normative text: formats/cpk.md section 7.
"""

from __future__ import annotations

import hashlib
import functools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import numpy as np

from connpack import contract, formats, rng
from connpack import values as vq
from connpack.description import KINDS, USES_GENERATED, Description, TensorCode
from connpack.errors import (
    ConnpackError,
    FormatError,
    InputFileError,
    ShapeMismatchError,
    SizeOverflowError,
    SpecError,
    UnknownFieldError,
    WeightHashError,
)
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


_CHUNK = 1 << 22  # elements of a generated weight held at once while packing or reordering


def _generated_chunks(spec: NetworkSpec, name: str, index: int, shape: tuple):
    """(start, float32 values) chunks of the generated weight of tensor ``index``, in C order."""
    n = math.prod(shape)
    for a in range(0, n, _CHUNK):
        yield a, rng.generate_range(spec.init_for(name), spec.rng.seed, index, shape, a, min(n, a + _CHUNK))


def _key_positions(spec: NetworkSpec, name: str, index: int, shape: tuple, sha=None):
    """(start position of each |G| order key (cpk.md 7.2) in the sorted order, G if it was one chunk): a pass
    over G, chunk by chunk, that also feeds ``sha`` (hashlib) the float32 bytes of G when given."""
    counts = np.zeros(1 << 16, np.uint64)
    last = None
    for a, g in _generated_chunks(spec, name, index, shape):
        if sha is not None:
            sha.update(g.astype("<f4", copy=False))
        rng.kernel().key_counts(g, counts)
        last = g if a == 0 else None
    pos = np.zeros_like(counts)
    np.cumsum(counts[:-1], out=pos[1:])
    return pos, last


def _reorder(spec: NetworkSpec, name: str, index: int, bits: np.ndarray, *, inverse: bool, sha=None) -> np.ndarray:
    """``bits`` put in the |G| order (inverse: put back from it), in memory bounded by the bits and one chunk
    of G. The compiled path is a stable counting sort on the key, the same permutation as magnitude_order."""
    if rng.kernel() is None:  # the numpy reference
        g = rng.generate(spec.init_for(name), spec.rng.seed, index, bits.shape)
        if sha is not None:
            sha.update(g.astype("<f4", copy=False))
        order = magnitude_order(g)
        flat = np.empty(bits.size, dtype=bool)
        if inverse:
            flat[order] = bits.ravel()
        else:
            flat[:] = bits.ravel()[order]
        return flat.reshape(bits.shape)
    pos, whole = _key_positions(spec, name, index, bits.shape, sha)
    src = np.ascontiguousarray(bits).reshape(-1).view(np.uint8)
    out = np.empty(bits.size, dtype=bool)
    dst = out.view(np.uint8)
    # a tensor of one chunk is not generated twice; a larger one is, rather than held (bounded memory)
    chunks = [(0, whole)] if whole is not None else _generated_chunks(spec, name, index, bits.shape)
    for a, g in chunks:
        b = a + g.size
        if inverse:
            rng.kernel().scatter(g, src, dst[a:b], pos, True)
        else:
            rng.kernel().scatter(g, src[a:b], dst, pos, False)
    return out.reshape(bits.shape)


def _weight_hash(spec: NetworkSpec, name: str, index: int, shape: tuple) -> str:
    """rng.tensor_hash of the generated weight, computed chunk by chunk."""
    sha = hashlib.sha256()
    for _a, g in _generated_chunks(spec, name, index, shape):
        sha.update(g.astype("<f4", copy=False))
    return sha.hexdigest()[:16]


def _tensor_parts(
    spec: NetworkSpec,
    index: int,
    name: str,
    code: TensorCode,
    weight_hash: str | None,
    values,
    codec: str,
    coded: bool,
    hints: dict | None = None,
) -> tuple[dict, dict]:
    """(meta entry, {section name: array}) of one tensor (cpk.md 7.2); with ``coded`` the sections are
    formats.Section payloads, coded here, so that the bits' |G| order trial codes each candidate once.
    ``values``: see to_container; ``hints`` receives the Container.codecs hints of uncoded sections."""
    hints = {} if hints is None else hints

    def section(n, a, extra=()):
        if coded:
            return formats.encode_section(n, a, codec, extra=extra)
        if extra:
            hints[n] = extra
        return a

    entry: dict = {"i": index, "k": code.kind}
    parts: dict = {}
    sha = hashlib.sha256() if code.kind in USES_GENERATED and weight_hash is None else None
    if code.kind == "dense":
        parts[name] = section(name, code.values.astype(np.float32))
    else:
        parts[name] = section(name, code.bits)
        if spec.init_for(name).dist in MAGNITUDE_INITS and code.bits.size > 1:
            ordered = _reorder(spec, name, index, code.bits, inverse=False, sha=sha)
            if sha is not None:  # the pass over G that found the order also hashed it
                weight_hash = sha.hexdigest()[:16]
            alt = formats.encode_section(name, ordered, codec)
            plain = parts[name] if coded else formats.encode_section(name, code.bits, codec)
            if len(alt.payload) < len(plain.payload):
                parts[name], entry["o"] = (alt if coded else ordered), "g"
    if code.kind in USES_GENERATED:
        entry["h"] = weight_hash if weight_hash is not None else _weight_hash(spec, name, index, code.shape)
    if code.kind == "ternary":
        parts[f"{name}:s"] = section(f"{name}:s", code.signs)
        entry["c"] = [float(np.float32(c)) for c in code.centroids]
    if code.kind == "values":
        how = values.get(name, "float32") if isinstance(values, dict) else values
        if isinstance(how, vq.Quant):  # quantised (cpk.md 7.2.1)
            g_kept = None
            if how.a is not None:
                g = rng.generate(spec.init_for(name), spec.rng.seed, index, code.shape)
                entry["h"], g_kept = rng.tensor_hash(g), g[code.bits]
            q = vq.quantise(code.values, how, vq.channels(code.bits), g_kept)
            parts[f"{name}:v"] = section(f"{name}:v", q, ("qans",))
            parts[f"{name}:q"] = section(f"{name}:q", how.steps)
            if how.a is not None:
                parts[f"{name}:a"] = section(f"{name}:a", np.array([how.a], dtype=np.float32))
        else:
            parts[f"{name}:v"] = section(f"{name}:v", _cast_values(code.values, how), ("planes",))
    return entry, parts


def _dense_array(v) -> np.ndarray:
    v = np.asarray(v, order="C")  # keeps 0-d tensors 0-d
    return v.astype(np.float32) if v.dtype.kind == "f" or v.dtype.name == "bfloat16" else v  # f4 (7.2)


def _meta(desc: Description) -> dict:
    """The file's meta without its tensor entries: {"spec", "t": {}} (+ "data"); "t" is filled tensor by tensor."""
    meta = {"spec": desc.spec.compact_dict(), "t": {}}
    if desc.data is not None:  # the data contract (cpk.md 7.9), refused here if it does not fit the network
        desc.data.fits(desc.spec.model.in_shape, desc.spec.model.num_classes)
        meta["data"] = desc.data.to_meta()
    return meta


def _parts(desc: Description, values, codec: str, coded: bool, hints: dict | None = None):
    """meta, then (name, array or Section) of every section, one tensor at a time."""
    meta = _meta(desc)
    meta_t = meta["t"]
    yield meta
    for index, (name, code) in enumerate(desc.tensors.items()):
        entry, parts = _tensor_parts(
            desc.spec, index, name, code, desc.weight_hashes.get(name), values, codec, coded, hints
        )
        meta_t[name] = entry
        yield from parts.items()
    for name, v in desc.dense.items():
        yield from _dense_parts(name, v, values, codec, coded, hints)


def _dense_parts(name: str, v, values, codec: str, coded: bool, hints: dict | None = None) -> list:
    """(name, array or Section) of a dense tensor: f4, or, for a bias given a Quant in ``values`` (one step),
    i4 indices and the step (cpk.md 7.2.1)."""
    how = values.get(name) if isinstance(values, dict) else None
    a = _dense_array(v)
    if not isinstance(how, vq.Quant):
        return [(name, formats.encode_section(name, a, codec) if coded else a)]
    if how.steps.size != 1 or how.a is not None or a.dtype != np.float32:
        raise SpecError(f"dense tensor {name!r}: quantised with one step and no prediction only")
    q = vq.quantise(a.ravel(), how, np.zeros(a.size, np.intp)).reshape(a.shape)
    if not coded:
        hints[name] = ("qans",)
        return [(f"{name}:q", how.steps), (name, q)]
    return [
        (f"{name}:q", formats.encode_section(f"{name}:q", how.steps, codec)),
        (name, formats.encode_section(name, q, codec, extra=("qans",))),
    ]


def to_container(desc: Description, values="float32", codec: str = "auto") -> formats.Container:
    """The container of ``desc`` (cpk.md 7). A bit section over a weight drawn with varying magnitudes is
    stored in the |G| order (entry "o": "g") when that codes smaller with ``codec``: magnitude pruning
    rewound to the initial weights (IMP, ASNI) keeps mostly the weights that were large at init, so in that
    order the mask's density rises steadily and the context codec's row classes capture it. Every
    regenerated weight gets its hash (computed if ``desc`` lacks it), so unpack can refuse a wrong
    regeneration.

    ``values``: the stored type of every "values" tensor's kept values (float32 | float16 | bfloat16), or a
    mapping tensor name -> such a type or a connpack.values.Quant (quantised; absent names: float32)."""
    hints: dict = {}
    it = _parts(desc, values, codec, coded=False, hints=hints)
    meta = next(it)
    arrays = dict(it)
    return formats.Container(meta=meta, arrays=arrays, codecs=hints)


DEFAULT_MAX_WEIGHTS = formats.DEFAULT_MAX_ELEMENTS  # 2**31 elements (all sections, all state-dict tensors)
VALUE_CODES = ("f4", "f2", "bf16", "i4")  # dtypes of a values tensor's ":v" section (cpk.md 7.2; i4: 7.2.1)

META_KEYS = ("spec", "t")  # required; "data" (the data contract, cpk.md 7.9) is optional
ENTRY_KEYS = ("c", "h", "i", "k", "o")
SPEC_KEYS = {"model": ModelSpec, "rng": RngSpec, "init": InitSpec, "method": None, "inits": InitSpec, "hparams": None}


def _known_fields(obj, allowed, where: str) -> None:
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object")
    extra = sorted(set(obj) - set(allowed))
    if extra:
        raise UnknownFieldError(f"unknown field(s) {', '.join(map(repr, extra))} in {where}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    """A JSON number that binary64 can hold (an integer literal like 10**400 is not one)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return isinstance(x, float) or abs(x) <= _MAX_FLOAT_INT


_MAX_FLOAT_INT = int(np.finfo(np.float64).max)


def _is_float32(x) -> bool:
    """A JSON number that is exactly a finite float32 value."""
    return _is_number(x) and abs(x) <= float(np.finfo(np.float32).max) and float(np.float32(x)) == x


def _is_shape3(x) -> bool:
    return isinstance(x, list) and len(x) == 3 and all(_is_int(d) for d in x)


# JSON type of every field of cpk.md 7.1 (the value ranges are the spec dataclasses' own checks)
FIELD_TYPES = {
    "model": {
        "arch": (str, "a string"),
        "in_shape": (_is_shape3, "a list of 3 integers"),
        "num_classes": (_is_int, "an integer"),
        "width": (_is_number, "a number"),
        "bias": (bool, "true or false"),
        "batchnorm": (str, "a string"),
    },
    "rng": {"seed": (_is_int, "an integer"), "algorithm": (str, "a string")},
    "init": {
        "dist": (str, "a string"),
        "p_positive": (_is_number, "a number"),
        "scale": (_is_number, "a number"),
        "gain": (_is_number, "a number"),
    },
    "hparams": {"k": (_is_number, "a number")},
}


def _check_types(obj: dict, kind: str, where: str) -> None:
    for key, value in obj.items():
        test, what = FIELD_TYPES[kind][key]
        ok = isinstance(value, test) if isinstance(test, type) else test(value)
        if not ok:
            raise FormatError(f"{where}.{key} must be {what}, got {value!r:.40}")


def _check_spec_fields(spec) -> None:
    """Step 7.3.1 on meta.spec: only the fields NetworkSpec.compact_dict() writes (cpk.md 7.1)."""
    _known_fields(spec, SPEC_KEYS, "meta.spec")
    if "hparams" in spec:  # edge-popup's k, the only method setting a rebuild records (cpk.md 7.1)
        _known_fields(spec["hparams"], ["k"], "meta.spec.hparams")
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


def _check_spec_types(spec) -> None:
    """Step 7.3.2 on meta.spec: every field of its JSON type (cpk.md 7.1)."""
    for key in ("model", "rng", "init", "hparams"):
        if key in spec:
            _check_types(spec[key], key, f"meta.spec.{key}")
    for name, init in spec.get("inits", {}).items():
        _check_types(init, "init", f"meta.spec.inits[{name!r}]")
    if "method" in spec and not isinstance(spec["method"], str):
        raise FormatError(f"meta.spec.method must be a string, got {spec['method']!r:.40}")
    if "hparams" in spec and not 0 < spec["hparams"].get("k", 0) <= 1:
        raise FormatError("meta.spec.hparams.k must be a number in (0, 1]")


def _entries(meta) -> list[tuple[str, dict]]:
    """meta.t as (name, entry) pairs in tensor-index order, every field checked (cpk.md 7.2)."""
    _known_fields(meta, META_KEYS + ("data",), "meta")
    for key in META_KEYS:
        if key not in meta:
            raise FormatError(f"meta lacks the field {key!r}")
    _check_spec_fields(meta["spec"])  # 7.3.1: unknown fields anywhere, before any type (7.3.2)
    if not isinstance(meta["t"], dict):
        raise FormatError("meta.t must be a JSON object")
    for name, e in meta["t"].items():
        _known_fields(e, ENTRY_KEYS, f"meta.t[{name!r}]")
    if "data" in meta:
        contract.check_fields(meta["data"])
    _check_spec_types(meta["spec"])
    out = []
    for name, e in meta["t"].items():
        kind, index = e.get("k"), e.get("i")
        if kind not in KINDS:
            raise FormatError(f"tensor {name!r}: unknown kind {kind!r:.40}")
        if not isinstance(index, int) or isinstance(index, bool):
            raise FormatError(f"tensor {name!r}: index {index!r:.40} is not an integer")
        h = e.get("h")
        if (h is None and kind in USES_GENERATED) or (h is not None and kind not in (*USES_GENERATED, "values")):
            raise FormatError(
                f"tensor {name!r}: a weight hash belongs to mask/flip tensors (which need one) and to "
                "seed-predicted values only"
            )
        if h is not None and (not isinstance(h, str) or len(h) != 16 or h.strip("0123456789abcdef")):
            raise FormatError(f"tensor {name!r}: weight hash {h!r:.40} is not 16 lowercase hex digits")
        cen = e.get("c")
        if (cen is not None) != (kind == "ternary"):
            raise FormatError(f"tensor {name!r}: centroids belong to ternary tensors only, and they need them")
        if cen is not None and not (isinstance(cen, list) and len(cen) == 2 and all(_is_float32(x) for x in cen)):
            raise FormatError(f"tensor {name!r}: centroids {cen!r:.60} are not two float32 numbers")
        if "o" in e and (e["o"] != "g" or kind == "dense"):
            raise FormatError(f'tensor {name!r}: order {e["o"]!r:.20} invalid ("g", on bit sections only)')
        out.append((name, e))
    out.sort(key=lambda ne: ne[1]["i"])
    if [e["i"] for _, e in out] != list(range(len(out))):
        raise FormatError("tensor indices in meta.t are not 0, 1, ..., n-1 (each once)")
    return out


def _spec_of(meta) -> NetworkSpec:
    """The NetworkSpec in ``meta`` after the checks of 7.3.1-2; its value errors are format errors."""
    try:
        return NetworkSpec.from_dict(meta["spec"])
    except (ConnpackError, OverflowError, ValueError, TypeError) as e:
        raise FormatError(f"invalid network description: {e}") from None


def _data_of(meta, spec: NetworkSpec) -> contract.DataContract | None:
    """The data contract in ``meta`` (cpk.md 7.9), every rule checked (7.3.2); None when there is none."""
    if "data" not in meta:
        return None
    return contract.from_meta(meta["data"], spec.model.in_shape, spec.model.num_classes)


def _architecture_of(spec: NetworkSpec, max_weights: int) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """architecture_shapes(spec), refused (FormatError / SizeOverflowError) if it cannot be built or holds more
    than ``max_weights`` elements. Numbers no network within the budget can have are refused before torch
    sees them (an input, a class count or a squared width larger than the budget)."""
    m = spec.model  # every architecture has at least width**2 weights (two hidden layers scaled by it)
    if math.prod(m.in_shape) > max_weights or m.num_classes > max_weights or m.width > math.sqrt(max_weights):
        raise SizeOverflowError(
            f"model {m.arch!r} (in_shape {list(m.in_shape)!s:.60}, num_classes "
            f"{m.num_classes!s:.30}, width {m.width:.6g}) exceeds the budget of {max_weights} "
            "weights (--max-weights)"
        )
    try:
        names, shapes = architecture_shapes(spec)
    except FormatError:
        raise
    except ConnpackError as e:
        raise FormatError(f"cannot rebuild the architecture: {e}") from None
    except (RuntimeError, ValueError, OverflowError, TypeError, ZeroDivisionError) as e:  # torch on absurd sizes
        raise FormatError(f"cannot rebuild the architecture {m.arch!r}: {type(e).__name__}: {e}"[:300]) from None
    total = sum(math.prod(v) for v in shapes.values())
    if total > max_weights:
        raise SizeOverflowError(
            f"architecture {m.arch!r} has {total} weights, more than the budget of {max_weights} (--max-weights)"
        )
    return names, shapes


def validate_meta(
    meta,
    sections: dict[str, tuple[str, tuple[int, ...]]],
    *,
    max_weights: int = DEFAULT_MAX_WEIGHTS,
    check: bool = True,
) -> None:
    """Every check of cpk.md 7.3.1-7.3.3 that needs no payload, in that order, on the header alone:
    ``sections`` maps each section name to (dtype code, shape) (formats.section_table). Run before any
    section is decoded (formats.decode's ``validate``), so a bad header costs no decoding. With ``check`` the
    sections must be exactly the architecture's tensors; the architecture must fit ``max_weights`` elements.
    """
    entries = _entries(meta)
    spec = _spec_of(meta)
    _data_of(meta, spec)
    for name, e in entries:  # 7.3.2: the sections each tensor needs, of the right dtype
        kind, main = e["k"], sections.get(name)
        want = ("f4",) if kind == "dense" else ("b1",)
        if main is None:
            raise FormatError(f"tensor section {name!r} is missing")
        if main[0] not in want:
            raise FormatError(f"section {name!r} has dtype {main[0]}, a {kind} tensor needs {want[0]}")
        extra = {"ternary": (":s", ("b1",)), "values": (":v", VALUE_CODES)}.get(kind)
        if extra:
            sub = sections.get(name + extra[0])
            if sub is None:
                raise FormatError(f"tensor section {name + extra[0]!r} is missing")
            if sub[0] not in extra[1]:
                raise FormatError(f"section {name + extra[0]!r} has dtype {sub[0]}, expected {'/'.join(extra[1])}")
        if kind == "values":  # 7.2.1: quantised values need their steps; the prediction needs the hash
            quantised = sections[name + ":v"][0] == "i4"
            for x, need in ((":q", quantised), (":a", quantised and "h" in e)):
                sub = sections.get(name + x)
                if need and x == ":q" and sub is None:
                    raise FormatError(f"tensor section {name + x!r} is missing")
                if sub is not None and (not quantised or (x == ":a" and "h" not in e)):
                    raise FormatError(
                        f"section {name + x!r} belongs to quantised values"
                        + (" with a weight hash" if x == ":a" else "")
                    )
                if sub is not None and sub[0] != "f4":
                    raise FormatError(f"section {name + x!r} has dtype {sub[0]}, expected f4")
            if "h" in e and not (quantised and name + ":a" in sections):
                raise FormatError(f"tensor {name!r}: a weight hash on values belongs to seed-predicted values only")
    claimed = {n for n, _ in entries} | {
        n + x
        for n, e in entries
        for x in (":s", ":v", ":q", ":a")
        if (e["k"], x) in (("ternary", ":s"), ("values", ":v"), ("values", ":q"), ("values", ":a"))
    }
    for name, (code, shape) in sections.items():  # dense sections: f4, or i4 indices with a ":q" step (7.2.1)
        if name in claimed:
            continue
        if ":" in name:
            base = name[:-2]
            if not (name.endswith(":q") and base not in claimed and sections.get(base, ("",))[0] == "i4"):
                raise FormatError(f"section {name!r} belongs to no tensor in meta.t")
            if code != "f4" or tuple(shape) != (1,):
                raise FormatError(f"section {name!r} (the step of a quantised dense tensor) must be f4 of shape [1]")
            continue
        if code == "i4" and name + ":q" in sections:
            continue
        if code != "f4":
            raise FormatError(f"dense section {name!r} has dtype {code}, dense tensors are f4 (or i4 with {name}:q)")
    if not check:
        return
    names, shapes = _architecture_of(spec, max_weights)  # 7.3.3
    _match_architecture(
        spec.model.arch,
        names,
        shapes,
        [n for n, _ in entries],
        {n: shp for n, (_c, shp) in sections.items() if ":" not in n},
    )
    for name, e in entries:  # a :s / :v section holds one element per kept weight: at most the tensor's size
        for x in (":s", ":v"):
            sub = sections.get(name + x)
            if sub is not None and (len(sub[1]) != 1 or sub[1][0] > math.prod(shapes[name])):
                raise ShapeMismatchError(
                    f"section {name + x!r} has shape {sub[1]}, its tensor keeps at most "
                    f"{math.prod(shapes[name])} weights"
                )
        out_channels = shapes[name][0] if shapes[name] else 1
        for x, ok in ((":q", ((1,), (out_channels,))), (":a", ((1,),))):
            sub = sections.get(name + x)
            if sub is not None and tuple(sub[1]) not in ok:
                raise ShapeMismatchError(
                    f"section {name + x!r} has shape {tuple(sub[1])}, expected " + " or ".join(map(str, ok))
                )


def _section(c: formats.Container, name: str, kinds: str, shape: tuple | None = None) -> np.ndarray:
    """The section ``name``; its dtype kind must be in ``kinds`` ("b": bool, "f": float, "i": int32, "4": float32)
    and its shape ``shape``."""
    if name not in c.arrays:
        raise FormatError(f"tensor section {name!r} is missing")
    a = c.arrays[name]
    kind = "f" if a.dtype.name == "bfloat16" else a.dtype.kind
    kind = "4" if a.dtype == np.float32 and "4" in kinds else kind
    if kind not in kinds or (kind == "i" and a.dtype != np.int32):
        want = {"b": "bool", "f": "float", "i": "int32", "4": "float32"}
        raise FormatError(f"section {name!r} has dtype {a.dtype}, expected {' or '.join(want[k] for k in kinds)}")
    if shape is not None and a.shape != shape:
        raise ShapeMismatchError(f"section {name!r} has shape {a.shape}, its tensor needs {shape}")
    return a


def _values(c: formats.Container, spec: NetworkSpec, name: str, entry: dict, mask: np.ndarray) -> np.ndarray:
    """The float32 kept values of a "values" tensor: stored as floats, or quantised (connpack.values, cpk.md
    7.2.1; the section set and shapes were checked by validate_meta)."""
    kept = (int(np.count_nonzero(mask)),)
    v = _section(c, f"{name}:v", "fi", kept)
    if v.dtype != np.int32:  # float32, float16 or bfloat16
        return v.astype(np.float32)
    steps = _section(c, f"{name}:q", "4")
    if steps.shape not in ((1,), (mask.shape[0] if mask.ndim else 1,)):
        raise ShapeMismatchError(f"section '{name}:q' has shape {steps.shape}, expected (1,) or ({mask.shape[0]},)")
    if not (np.all(np.isfinite(steps)) and np.all(steps > 0)):
        raise FormatError(f"section '{name}:q' holds a step that is not finite and > 0")
    if v.size and np.abs(v.astype(np.int64)).max() >= 2**24:
        raise FormatError(f"section '{name}:v' holds an index beyond 2^24")
    a = g_kept = None
    if f"{name}:a" in c.arrays:
        a_arr = _section(c, f"{name}:a", "4", (1,))
        if not np.isfinite(a_arr[0]):
            raise FormatError(f"section '{name}:a' is not finite")
        g = rng.generate(spec.init_for(name), spec.rng.seed, entry["i"], mask.shape)
        if rng.tensor_hash(g) != entry["h"]:
            raise WeightHashError(f"regenerated weight '{name}' does not match its recorded hash")
        a, g_kept = float(a_arr[0]), g[mask]
    return vq.dequantise(v, steps, vq.channels(mask), a, g_kept)


def from_container(c: formats.Container) -> Description:
    """The Description in a decoded container; every meta field and section is checked (cpk.md 7; the
    architecture by ``validate_meta`` with ``check``, which ``decode``/``unpack`` run before decoding)."""
    validate_meta(c.meta, {n: (formats.dtype_code(a.dtype), a.shape) for n, a in c.arrays.items()}, check=False)
    entries = _entries(c.meta)
    spec = _spec_of(c.meta)
    data = _data_of(c.meta, spec)
    try:
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
                main = _reorder(spec, name, entry["i"], main, inverse=True)
            kept = (int(np.count_nonzero(main)),)
            kw = {}
            if kind == "ternary":
                kw = {"signs": _section(c, f"{name}:s", "b", kept), "centroids": tuple(float(x) for x in entry["c"])}
                used.add(f"{name}:s")
            if kind == "values":
                kw = {"values": _values(c, spec, name, entry, main)}
                used.update(k for k in (f"{name}:v", f"{name}:q", f"{name}:a") if k in c.arrays)
            tensors[name] = TensorCode(kind, main.shape, bits=main, **kw)
            if "h" in entry and kind in USES_GENERATED:
                hashes[name] = entry["h"]
        dense = {k: v for k, v in c.arrays.items() if k not in used}
        for k in [k for k in dense if dense[k].dtype == np.int32 and f"{k}:q" in dense]:  # quantised dense (7.2.1)
            step = dense.pop(f"{k}:q")
            if step.shape != (1,) or not (np.isfinite(step[0]) and step[0] > 0):
                raise FormatError(f"section '{k}:q' must hold one finite step > 0")
            if dense[k].size and np.abs(dense[k].astype(np.int64)).max() >= 2**24:
                raise FormatError(f"section {k!r} holds an index beyond 2^24")
            dense[k] = (dense[k].astype(np.float32) * step.astype(np.float32)[0]).astype(np.float32)
        stray = [k for k in dense if ":" in k]
        if stray:
            raise FormatError(f"section {stray[0]!r} belongs to no tensor in meta.t")
    except (FormatError, WeightHashError):
        raise
    except ConnpackError as e:
        raise FormatError(f"invalid network description: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise FormatError(f"invalid network description in header ({type(e).__name__}: {e})") from None
    return Description(spec, tensors, dense, hashes, data)


def architecture_shapes(spec: NetworkSpec) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """(connectivity weight names in tensor-index order, {state_dict key: shape}) of ``spec``'s architecture.

    Every architecture, torchvision's too, comes from its table (connpack.architectures, no torch: a file is
    refused, or reported, without importing it; torch_model_shapes builds the modules on PyTorch's meta device
    to check the table). The architecture depends only on ``spec.model``, so the last few are remembered.
    """
    names, shapes = _model_shapes(spec.model)
    return list(names), dict(shapes)


@functools.lru_cache(maxsize=32)
def _model_shapes(model_spec: ModelSpec) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[int, ...]], ...]]:
    from connpack import architectures

    return architectures.shapes(model_spec)


def torch_model_shapes(model_spec: ModelSpec) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[int, ...]], ...]]:
    """The architecture's names and shapes from its torch module, built on the meta device."""
    import torch

    from connpack import models
    from connpack.layers import conn_layers

    with torch.device("meta"):
        model = models.get(model_spec.arch)(model_spec)
    names = tuple(f"{n}.weight" for n, _ in conn_layers(model))
    shapes = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
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
    _match_architecture(desc.spec.model.arch, names, shapes, list(desc.tensors), ours)


def _match_architecture(arch: str, names: list, shapes: dict, order: list, found: dict) -> None:
    """ShapeMismatchError unless ``order`` (the connectivity tensors, by index) is the architecture's ``names``
    and ``found`` (every tensor's shape) is exactly its ``shapes``."""
    if order != names:
        bad = next((i for i, (a, b) in enumerate(zip(order, names)) if a != b), min(len(names), len(order)))
        got = order[bad] if bad < len(order) else "nothing"
        want = names[bad] if bad < len(names) else "nothing"
        raise ShapeMismatchError(f"tensor index {bad} is {got!r}, architecture '{arch}' has {want!r}")
    missing, unexpected = sorted(set(shapes) - set(found)), sorted(set(found) - set(shapes))
    if missing or unexpected:
        raise ShapeMismatchError(
            f"tensors do not match architecture '{arch}': missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for key, shape in shapes.items():
        if found[key] != shape:
            raise ShapeMismatchError(f"tensor {key!r} has shape {found[key]}, architecture '{arch}' expects {shape}")


def pack(desc: Description, path: str | Path, codec: str = "auto", values="float32", progress=None) -> int:
    """Write ``desc`` as a .cpk file atomically; returns the file size in bytes. The same bytes as
    ``formats.write(path, to_container(desc, values, codec), codec)``, in bounded memory: tensor by tensor,
    each section coded once and its arrays dropped before the next (only the coded payloads are kept).
    ``progress``: called with {"done": i, "total": n, "name": tensor} after each connectivity tensor."""
    meta = _meta(desc)
    meta_t = meta["t"]
    sections, pending = [], deque()
    total = len(desc.tensors)

    def collect(fut) -> None:
        name, (entry, parts) = fut.result()
        meta_t[name] = entry
        sections.extend(parts.values())
        if progress is not None:
            progress({"done": len(meta_t), "total": total, "name": name})

    # two tensors in flight: the coders (zstd, numpy) release the GIL; the sections do not depend on each other
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="connpack-pack") as ex:
        for index, (name, code) in enumerate(desc.tensors.items()):
            pending.append(
                ex.submit(
                    lambda *a: (a[2], _tensor_parts(*a)),
                    desc.spec,
                    index,
                    name,
                    code,
                    desc.weight_hashes.get(name),
                    values,
                    codec,
                    True,
                )
            )
            if len(pending) >= 2:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    sections += [sec for name, v in desc.dense.items() for _n, sec in _dense_parts(name, v, values, codec, True)]
    try:  # what unpack will check (cpk.md 7.3.1-7.3.3): never write a file connpack itself would refuse
        validate_meta(meta, {s.name: (s.dtype, tuple(s.shape)) for s in sections}, max_weights=1 << 62)
    except FormatError as e:
        raise InputFileError(f"cannot pack this network: {e}") from None
    return formats.write_sections(path, meta, sections)


def validator(max_weights: int = DEFAULT_MAX_WEIGHTS, check: bool = True):
    """``validate_meta`` as the ``validate`` hook of formats.decode / formats.read."""

    def validate(meta, sections):
        validate_meta(meta, sections, max_weights=max_weights, check=check)

    return validate


def decode(data: bytes, *, max_weights: int = DEFAULT_MAX_WEIGHTS, check: bool = True) -> Description:
    """The Description in .cpk bytes, validated in the order of cpk.md 3 and 7.3: the header and the metadata
    (``validate_meta``, against the architecture with ``check``, within ``max_weights`` elements) before any
    section is decoded. Weight hashes are checked when the weights are materialised (Description.state_dict).
    """
    return from_container(formats.decode(data, max_elements=max_weights, validate=validator(max_weights, check)))


def unpack(path: str | Path, *, check: bool = True, max_weights: int = DEFAULT_MAX_WEIGHTS) -> Description:
    """Read and validate a .cpk file (``decode``)."""
    return from_container(formats.read(path, max_elements=max_weights, validate=validator(max_weights, check)))


def load_checked(path: str | Path, *, max_weights: int = DEFAULT_MAX_WEIGHTS, progress=None) -> Description:
    """``unpack`` + every generated weight regenerated and hash-checked now, with numpy alone: a reader calls
    this before it imports torch or onnx, so a small file with a wrong hash costs nothing more. The checked
    tensors are kept in the Description and reused by the exporters (Description.state_dict; ``progress`` as
    there, per tensor)."""
    desc = unpack(path, max_weights=max_weights)
    desc.state_dict(progress=progress)
    return desc
