"""Structure-aware fuzzer of the whole .cpk network reader (issue 16): every case is a file with VALID checksums
built from a valid network, whose JSON metadata (spec fields, tensor entries), section table (dtype, shape,
codec, names) or section payloads were mutated as an attacker would: wrong JSON types, huge and boundary
numbers, other architectures, kinds and codecs, stray or missing sections, flipped payload bytes. Each case
goes through the full reader, as `connpack unpack` runs it: packing.decode (container checks, metadata
validation against the architecture, payloads) and Description.state_dict (weights regenerated and
hash-checked).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.fuzz_structured --cases 100000 --workers 1

A crash is any exception that is not a ConnpackError (a FormatError, or a SizeOverflowError for a network over
the budget), any case over --slow seconds (default 5) and any case after which the worker's peak RSS grew by
more than --rss-mb (default 1024) over its own baseline (imports and the seed files). Cases run with
max_weights = --max-weights (default 2**22): a valid file may describe up to the budget, and regenerating
2**31 weights (the default budget) legitimately takes 8 GB; the budget is what bounds a valid file.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import resource
import struct
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

from connpack import formats
from connpack.errors import ConnpackError

VECTORS = Path(__file__).resolve().parents[1] / "formats" / "vectors"

# values an attacker tries in any JSON slot: wrong types, boundaries, huge numbers
ANY = [
    None,
    True,
    False,
    -1,
    0,
    1,
    2,
    3,
    0.5,
    -0.0,
    1e-300,
    1.5e308,
    2**31,
    2**32,
    2**40,
    2**63,
    2**64,
    2**70,
    10**30,
    10**400,
    -(10**400),
    "",
    "x",
    "0.5",
    "lenet300",
    "mask",
    "g",
    [],
    [1],
    [1, 2, 3],
    {},
    {"k": 1},
]
FIELD_VALUES = {
    "arch": [
        "lenet300",
        "lenet5",
        "conv2",
        "conv4",
        "conv6",
        "vgg11",
        "resnet18",
        "connpack:conv2",
        "nope",
        "torchvision:nope",
    ],
    "in_shape": [
        [1, 8, 8],
        [3, 32, 32],
        [1, 28, 28],
        [1, 1, 1],
        [0, 8, 8],
        [1, 2**20, 2**20],
        [1, 2**40, 2**40],
        [1.0, 8, 8],
        [1, 8],
        [1, 8, 8, 8],
        [True, 8, 8],
    ],
    "num_classes": [1, 2, 10, 1000, 2**31, 2**70, 10.0, True],
    "width": [0.01, 0.05, 0.5, 1, 1.0, 3, 1e3, 1e6, 1e300, 0, -1, 5e-324, True, "1"],
    "bias": [True, False, 1, "true"],
    "batchnorm": ["none", "frozen", "affine", "x", True],
    "seed": [0, 1, 2**32, 2**64 - 1, 2**64, -1, True, 1.0],
    "algorithm": ["philox4x32-10", "mt19937", 1],
    "dist": ["signed_constant", "kaiming_normal", "xavier_normal", "kaiming_uniform", "zeros", "ones", "x", 0],
    "p_positive": [0, 0.0, 0.3, 1, 1.0000001, -0.1, "0.5", True, 2**70],
    "scale": [1, 0.5, 1e-300, 1e300, 0, -1, True],
    "gain": [1, 1.4142135623730951, 1e300, 0, "2"],
    "method": ["prune", "flip", "asni", "edge-popup", 3, None, "\x1b[2J"],
    "k": [0.5, 1, 0, 1.5, "0.5", True],
    "i": [0, 1, 2, 3, -1, 2**40, True, 1.0, "0"],
    "kind": ["mask", "flip", "ternary", "values", "dense", "x", 1],
    "h": ["0" * 16, "f" * 16, "0" * 15, "G" * 16, 0, None],
    "c": [[-1.0, 1.0], [-0.5, 0.25], [0.1, 0.2], [1e39, 1], [1, 2, 3], [True, 1.0], "x", [10**40, 1]],
    "o": ["g", "c", 1],
}
SPEC_FIELDS = {
    "model": ["arch", "in_shape", "num_classes", "width", "bias", "batchnorm"],
    "rng": ["seed", "algorithm"],
    "init": ["dist", "p_positive", "scale", "gain"],
}
DTYPES = ["b1", "u1", "i1", "i4", "i8", "f2", "f4", "f8", "bf16"]
CODECS = ["raw", "zstd", "golomb", "ans", "context", "planes", "qans", "lzma"]
DIMS = [0, 1, 2, 3, 7, 8, 100, 2**16, 2**20, 2**31, 2**40]


def parse(data: bytes):
    """(meta, table, payloads) of a valid container."""
    meta, table, start = formats.container._parse_header(data)
    payloads, off = [], start
    for e in table:
        payloads.append(bytes(data[off : off + e[4]]))
        off += e[4]
    return meta, table, payloads


def build(meta, table, payloads) -> bytes:
    """A file with valid checksums; the table is re-sorted by name and deduplicated (as the spec requires),
    unless a name is not a string (then the header refuses it, as intended)."""
    rows = list(zip(table, payloads))
    if all(isinstance(e[0], str) for e, _ in rows):
        seen, uniq = set(), []
        for e, p in sorted(rows, key=lambda r: r[0][0]):
            if e[0] not in seen:
                seen.add(e[0])
                uniq.append((e, p))
        rows = uniq
    table = [[*e[:4], len(p), zlib.crc32(p)] for e, p in rows]
    try:
        h = json.dumps(
            {"m": meta, "s": table}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError):
        return b""
    return struct.pack("<4sHII", b"CPK\x00", 1, len(h), zlib.crc32(h)) + h + b"".join(p for _, p in rows)


def seeds() -> list[bytes]:
    """Valid networks: the golden ones (every kind) and a few more packed here (conv, bias, batch norm)."""
    out = [f.read_bytes() for f in sorted(VECTORS.glob("net_*.cpk"))]
    from connpack.description import Description, TensorCode
    from connpack.packing import architecture_shapes, to_container
    from connpack.specs import ModelSpec, NetworkSpec

    rng = np.random.default_rng(0)
    for model in (
        ModelSpec(arch="conv2", in_shape=(1, 8, 8), width=0.05, bias=True),
        ModelSpec(arch="lenet5", in_shape=(1, 16, 16), width=0.5, batchnorm="affine"),
        ModelSpec(width=0.02, num_classes=3),
    ):
        spec = NetworkSpec(model=model, method="prune")
        names, shapes = architecture_shapes(spec)
        tensors = {}
        for i, n in enumerate(names):
            bits = rng.random(shapes[n]) < 0.3
            kind = ("mask", "flip", "ternary")[i % 3]
            extra = {"signs": rng.random(int(bits.sum())) < 0.5, "centroids": (-0.5, 0.25)} if kind == "ternary" else {}
            tensors[n] = TensorCode(kind, shapes[n], bits=bits, **extra)
        dense = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items() if k not in tensors}
        out.append(formats.encode(to_container(Description(spec, tensors, dense))))
    return out


def _pick(rng, seq):
    return seq[int(rng.integers(0, len(seq)))]


def _value(rng, field):
    return _pick(rng, FIELD_VALUES[field]) if field in FIELD_VALUES and rng.random() < 0.7 else _pick(rng, ANY)


def mutate_meta(rng, meta) -> None:
    spec, t = meta.setdefault("spec", {}), meta.setdefault("t", {})
    op = int(rng.integers(0, 9))
    if op <= 3:  # a spec field
        if not isinstance(spec, dict):
            meta["spec"] = spec = {}
        obj = _pick(rng, list(SPEC_FIELDS))
        field = _pick(rng, SPEC_FIELDS[obj])
        if not isinstance(spec.get(obj), dict):
            spec[obj] = {}
        spec[obj][field] = _value(rng, field)
    elif op == 4:  # method, hparams, inits
        which = int(rng.integers(0, 4))
        if which == 0:
            spec["method"] = _value(rng, "method")
        elif which == 1:
            spec["hparams"] = {"k": _value(rng, "k")} if rng.random() < 0.8 else _pick(rng, ANY)
        else:
            name = _pick(rng, list(t) or ["fc1.weight"])
            spec["inits"] = {name: {_pick(rng, SPEC_FIELDS["init"]): _value(rng, _pick(rng, SPEC_FIELDS["init"]))}}
    elif op <= 7 and t:  # a tensor entry field
        name = _pick(rng, list(t))
        if not isinstance(t[name], dict):
            t[name] = {}
        key = _pick(rng, ["i", "k", "h", "c", "o"])
        field = {"k": "kind"}.get(key, key)
        if rng.random() < 0.15:
            t[name].pop(key, None)
        else:
            t[name][key] = _value(rng, field)
    else:  # structure: an unknown field, a removed field, a whole object replaced
        target = _pick(rng, [meta, spec if isinstance(spec, dict) else meta, t])
        r = rng.random()
        if r < 0.3:
            target["x"] = 1
        elif r < 0.6 and target:
            target.pop(_pick(rng, list(target)))
        else:
            meta[_pick(rng, ["spec", "t"])] = _pick(rng, ANY)


def mutate_table(rng, meta, table, payloads) -> None:
    i = int(rng.integers(0, len(table))) if table else 0
    op = int(rng.integers(0, 7))
    if not table:
        op = 5
    if op == 0:
        table[i][1] = _pick(rng, DTYPES)
    elif op == 1 and isinstance(table[i][2], list):
        if table[i][2] and rng.random() < 0.8:
            table[i][2][int(rng.integers(0, len(table[i][2])))] = _pick(rng, DIMS)
        else:
            table[i][2] = [_pick(rng, DIMS) for _ in range(int(rng.integers(0, 4)))]
    elif op == 2:
        table[i][3] = _pick(rng, CODECS)
    elif op == 3:  # rename: a stray ':' section, a missing tensor section
        table[i][0] = _pick(rng, [table[i][0] + ":s", table[i][0] + ":v", table[i][0] + "x", "a:b", "fc1.bias"])
    elif op == 4:
        del table[i], payloads[i]
    elif op == 5:  # a new section of any dtype / shape with a constant ans or a raw payload
        shape = [_pick(rng, DIMS[:7]) for _ in range(int(rng.integers(0, 3)))]
        table.append(
            [
                _pick(rng, ["fc1.bias", "fc1.weight:s", "fc1.weight:v", "bn1.weight", "zz"]),
                _pick(rng, DTYPES),
                shape,
                _pick(rng, ["ans", "raw"]),
                0,
                0,
            ]
        )
        payloads.append(_pick(rng, [b"\x00", b"\x01", bytes(4 * int(np.prod(shape) if shape else 1))]))
    else:  # a huge shape with a tiny constant payload
        table[i][1], table[i][2], table[i][3] = "b1", [_pick(rng, DIMS[6:])] * int(rng.integers(1, 3)), "ans"
        payloads[i] = _pick(rng, [b"\x00", b"\x01", b"\x02\x01" + np.array([5], "<u4").tobytes()])


def mutate_payload(rng, table, payloads) -> None:
    if not payloads:
        return
    i = int(rng.integers(0, len(payloads)))
    buf = bytearray(payloads[i])
    for _ in range(int(rng.integers(1, 4))):
        op, L = int(rng.integers(0, 5)), len(buf)
        if op == 0 and L:
            j = int(rng.integers(0, 8 * L))
            buf[j // 8] ^= 1 << (j % 8)
        elif op == 1 and L:
            buf[int(rng.integers(0, L))] = _pick(rng, [0, 1, 2, 3, 0x7F, 0x80, 0xFF, int(rng.integers(0, 256))])
        elif op == 2:
            del buf[int(rng.integers(0, L + 1)) :]
        elif op == 3:
            buf += rng.bytes(int(rng.integers(1, 16)))
        elif op == 4 and L:  # the leading parameter bytes (mode, k, split axis, class bits)
            buf[int(rng.integers(0, min(L, 6)))] = int(rng.integers(0, 256))
    payloads[i] = bytes(buf)


_PARSED: dict[int, tuple] = {}


def case(rng, pool) -> bytes:
    i = int(rng.integers(0, len(pool)))
    if i not in _PARSED:
        _PARSED[i] = parse(pool[i])
    meta, table, payloads = copy.deepcopy(_PARSED[i])
    for _ in range(int(rng.integers(1, 4))):
        r = rng.random()
        try:
            if r < 0.45:
                mutate_meta(rng, meta)
            elif r < 0.7:
                mutate_table(rng, meta, table, payloads)
            else:
                mutate_payload(rng, table, payloads)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError):
            pass  # an earlier mutation replaced an object this one walks into: keep the file as it is
    return build(meta, table, payloads)


def run_case(data: bytes, max_weights: int) -> str:
    """The outcome of one case: the error class name, "ok", or "CRASH: ..."."""
    from connpack import packing

    try:
        packing.decode(data, max_weights=max_weights).state_dict()
        return "ok"
    except ConnpackError as e:
        if e.exit_code != 4:
            return f"CRASH: exit {e.exit_code} {type(e).__name__}: {e}"
        return type(e).__name__
    except Exception as e:  # noqa: BLE001 - the fuzzer's job is to find these
        return "CRASH: " + "".join(traceback.format_exception_only(e)).strip()


def worker(args):
    start, count, seed, max_weights, slow, rss_mb = args
    pool = seeds()
    rng = np.random.default_rng([seed, start])
    run_case(pool[0], max_weights)  # warm up imports before the baseline
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    crashes, outcomes, slowest = [], {}, (0.0, "")
    for _ in range(count):
        data = case(rng, pool)
        t = time.perf_counter()
        name = run_case(data, max_weights)
        dt = time.perf_counter() - t
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
        if dt > slow:
            name = f"CRASH: slow case {dt:.1f} s ({name})"
        elif grown > rss_mb:
            name = f"CRASH: peak RSS grew {grown:.0f} MiB ({name})"
        if dt > slowest[0]:
            slowest = (dt, data.hex()[:4000])
        key = "CRASH" if name.startswith("CRASH") else name
        outcomes[key] = outcomes.get(key, 0) + 1
        if key == "CRASH" and len(crashes) < 5:
            crashes.append((name, data.hex()[:4000]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return count, crashes, outcomes, slowest, base, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-weights", type=int, default=2**22)
    ap.add_argument("--slow", type=float, default=5.0, help="seconds after which a case counts as a crash")
    ap.add_argument("--rss-mb", type=float, default=1024.0, help="peak RSS growth (MiB) that counts as a crash")
    ap.add_argument("--show-slowest", action="store_true", help="print the slowest case's bytes (hex)")
    a = ap.parse_args(argv)
    chunk = 1000
    jobs = [(s, min(chunk, a.cases - s), a.seed, a.max_weights, a.slow, a.rss_mb) for s in range(0, a.cases, chunk)]
    t0 = time.perf_counter()
    total, crashes, outcomes, slowest, base, peak = 0, [], {}, (0.0, ""), 0.0, 0.0
    with mp.get_context("fork").Pool(a.workers, maxtasksperchild=10) as p:
        for n, cr, oc, sl, b, pk in p.imap_unordered(worker, jobs):
            total += n
            crashes += cr
            for k, v in oc.items():
                outcomes[k] = outcomes.get(k, 0) + v
            slowest = max(slowest, sl)
            base, peak = max(base, b), max(peak, pk)
            print(
                f"... {total} cases, {outcomes.get('CRASH', 0)} crashes, slowest {slowest[0] * 1000:.0f} ms, "
                f"peak RSS {peak:.0f} MiB, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    dt = time.perf_counter() - t0
    n_crash = outcomes.get("CRASH", 0)
    print(f"cases: {total} in {dt:.0f} s ({total / dt:.0f}/s, {a.workers} worker(s), max_weights {a.max_weights})")
    print(f"crashes (non-connpack exception, exit != 4, > {a.slow:g} s, RSS growth > {a.rss_mb:g} MiB): {n_crash}")
    print(f"slowest case: {slowest[0] * 1000:.0f} ms")
    print(f"peak RSS of a worker: {peak:.0f} MiB (baseline after imports and seeds: {base:.0f} MiB)")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])))
    for name, hexdata in crashes[:5]:
        print("---", name, "\n   input (hex):", hexdata[:600])
    if a.show_slowest:
        print("--- slowest input (hex):", slowest[1])
    return 0 if not n_crash else 1


if __name__ == "__main__":
    sys.exit(main())
