"""Hand-built .cpk files with valid checksums, as an attacker writes them (issue 16): tiny files that declare
huge tensors, wrong types in the metadata, wrong hashes. Shared by tests/test_hostile_files.py,
benchmarks/hostile_files.py and benchmarks/fuzz_cpk.py. Nothing here decodes anything."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

TINY_WIDTH = 30  # lenet300 at width 30: 784-9000-3000-10, 34,086,000 weights


def header_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def prefix(header: bytes, *, magic=b"CPK\x00", version=1, hlen=None, crc=None) -> bytes:
    return struct.pack(
        "<4sHII", magic, version, len(header) if hlen is None else hlen, zlib.crc32(header) if crc is None else crc
    )


def craft(meta, sections) -> bytes:
    """A container with valid checksums: ``sections`` = [(name, dtype, shape, codec, payload)], any order."""
    table, payloads = [], []
    for name, dt, shape, codec, payload in sorted(sections, key=lambda s: s[0]):
        table.append([name, dt, list(shape), codec, len(payload), zlib.crc32(payload)])
        payloads.append(payload)
    h = header_json({"m": meta, "s": table})
    return prefix(h) + h + b"".join(payloads)


ANS_ALL_ZEROS, ANS_ALL_ONES = b"\x00", b"\x01"
# ans mode 2, one 1 bit declared, a one-word stream whose state (5) is never consumed: invalid, but only
# the end of the stream says so
ANS_STUCK = b"\x02\x01" + np.array([5], dtype="<u4").tobytes()


def empty_meta_file(n: int = 2**31) -> bytes:
    """Metadata ``{}`` and one constant bit section declaring ``n`` elements (issue 16: 72 bytes, 2.85 GB)."""
    return craft({}, [("w", "b1", [n], "ans", ANS_ALL_ZEROS)])


def ans_stream_file(n: int = 2**31) -> bytes:
    """A container whose one ans section declares ``n`` bits from a one-word stream (issue 16: 1.8 GB, 17 s)."""
    return craft({}, [("w", "b1", [n], "ans", ANS_STUCK)])


def lenet_shapes(width: float) -> dict[str, tuple[int, int]]:
    h1, h2 = max(1, round(300 * width)), max(1, round(100 * width))
    return {"fc1.weight": (h1, 784), "fc2.weight": (h2, h1), "fc3.weight": (10, h2)}


def mask_network(width: float = TINY_WIDTH, hashes: dict | None = None) -> bytes:
    """lenet300 at ``width``, every mask all ones (a 1-byte ans payload each): a few hundred bytes for
    34M weights. ``hashes``: the true weight hashes (a valid file), or None: wrong hashes (issue 16: the
    401-byte network that regenerated every weight before the check)."""
    shapes = lenet_shapes(width)
    t = {n: {"i": i, "k": "mask", "h": (hashes or {}).get(n, "0" * 16)} for i, n in enumerate(shapes)}
    meta = {"spec": {"method": "prune", "model": {"width": width}}, "t": t}
    return craft(meta, [(n, "b1", list(s), "ans", ANS_ALL_ONES) for n, s in shapes.items()])


def true_hashes(width: float = TINY_WIDTH) -> dict[str, str]:
    """The weight hashes of lenet300 at ``width`` with the default spec (generates every weight once)."""
    from connpack import rng
    from connpack.specs import InitSpec

    shapes = lenet_shapes(width)
    return {n: rng.tensor_hash(rng.generate(InitSpec(), 0, i, s)) for i, (n, s) in enumerate(shapes.items())}


def small_network(meta_spec=None, t=None, sections=None) -> bytes:
    """lenet300 at width 0.01 (3x784 -> 1 -> 10): a valid mask network unless the caller overrides parts."""
    shapes = lenet_shapes(0.01)
    spec = {"method": "prune", "model": {"width": 0.01}} if meta_spec is None else meta_spec
    if t is None:
        t = {n: {"i": i, "k": "mask", "h": "0" * 16} for i, n in enumerate(shapes)}
    if sections is None:
        sections = [(n, "b1", list(s), "ans", ANS_ALL_ONES) for n, s in shapes.items()]
    return craft({"spec": spec, "t": t}, sections)
