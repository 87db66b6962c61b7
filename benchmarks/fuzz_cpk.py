"""Long fuzz run of the .cpk reader: mutated, truncated, extended, bit-flipped and spliced valid files (containers
and the golden networks, whose metadata is mutated too), half of them with every checksum recomputed so that
mutations reach the codecs and the network layer. Every failure must be a FormatError.

    .venv/bin/python benchmarks/fuzz_cpk.py [--cases 100000] [--workers 2] [--timeout 2.0] [--seed 0]

Reports cases tried, crashes (any exception that is not a FormatError; 0 required), hangs (a case over the
per-case timeout; 0 required), and the peak resident memory of the workers (resource.getrusage).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import signal
import struct
import sys
import time
import traceback
import zlib
from pathlib import Path

import numpy as np

from connpack.errors import ConnpackError, FormatError
from connpack.formats import MAGIC, Container, decode, encode
from connpack.formats import container as C
from connpack.packing import from_container


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def seeds() -> list[bytes]:
    rng = np.random.default_rng(1)
    out = []
    for codec in ("auto", "raw", "zstd", "golomb", "ans", "context"):
        arrays = {
            "a": rng.random((20, 30)) < 0.1,
            "b": rng.random((4, 3, 3, 3)) < 0.5,
            "c": rng.random((16, 40)) < rng.beta(0.5, 0.5, (16, 1)),
            "d": np.arange(5, dtype=np.float32),
            "e": np.zeros(40, dtype=np.float16),
            "z": np.ones(9, dtype=bool),
        }
        out.append(encode(Container({"k": [1, 2.5, "x"], "pad": "y" * 40}, arrays), codec=codec))
    vectors = Path(__file__).resolve().parents[1] / "formats" / "vectors"
    out += [f.read_bytes() for f in sorted(vectors.glob("net_*.cpk"))]  # networks: the meta layer too
    return out


def mutate_meta(rng: np.random.Generator, base: bytes) -> bytes:
    """Change one value of the metadata (network seeds: spec, tensor entries) and re-encode the header."""
    try:
        meta, table, start = C._parse_header(base)
    except ConnpackError:
        return base
    path, node = [], meta
    while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
        key = list(node)[int(rng.integers(0, len(node)))] if isinstance(node, dict) else int(rng.integers(0, len(node)))
        path.append((node, key))
        node = node[key]
    if not path:
        return base
    parent, key = path[-1]
    choice = int(rng.integers(0, 6))
    if choice == 0 and isinstance(parent, dict):
        del parent[key]
    elif choice == 1 and isinstance(parent, dict):
        parent["x" + str(int(rng.integers(0, 3)))] = 1
    else:
        parent[key] = [None, True, -1, 0, 1, 2**31, 2**64, 1.5e308, -0.0, "", "fc1.weight", "mask", [], {}][
            int(rng.integers(0, 14))
        ]
    hb = C._canonical({"m": meta, "s": table})
    return struct.pack("<4sHII", MAGIC, 1, len(hb), zlib.crc32(hb)) + hb + base[start:]


def fix_crcs(data: bytes) -> bytes:
    if len(data) >= 14:  # first make the header checksum right, so that broken JSON reaches the parser
        hlen = struct.unpack_from("<I", data, 6)[0]
        if 14 + hlen <= len(data):
            data = data[:10] + struct.pack("<I", zlib.crc32(data[14 : 14 + hlen])) + data[14:]
    try:
        meta, table, start = C._parse_header(data)
    except ConnpackError:
        return data
    off = start
    for e in table:
        if off + e[4] > len(data):
            return data
        e[5] = zlib.crc32(data[off : off + e[4]])
        off += e[4]
    hb = C._canonical({"m": meta, "s": table})
    return struct.pack("<4sHII", MAGIC, 1, len(hb), zlib.crc32(hb)) + hb + data[start:]


def mutate_section(rng: np.random.Generator, base: bytes) -> bytes:
    """Mutate one section's payload (or its declared shape/codec) and rebuild a file with valid checksums."""
    meta, table, start = C._parse_header(base)
    payloads, off = [], start
    for e in table:
        payloads.append(bytearray(base[off : off + e[4]]))
        off += e[4]
    i = int(rng.integers(0, len(table)))
    buf = payloads[i]
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 6))
        L = len(buf)
        if op == 0 and L:
            j = int(rng.integers(0, L * 8))
            buf[j // 8] ^= 1 << (j % 8)
        elif op == 1 and L:
            buf[int(rng.integers(0, L))] = int(rng.integers(0, 256))
        elif op == 2:
            del buf[int(rng.integers(0, L + 1)) :]
        elif op == 3:
            buf += rng.bytes(int(rng.integers(1, 16)))
        elif op == 4 and table[i][2]:
            d = int(rng.integers(0, len(table[i][2])))
            table[i][2][d] = int(rng.choice([0, 1, table[i][2][d] + 1, max(0, table[i][2][d] - 1), 1000]))
        elif op == 5:
            table[i][3] = str(rng.choice(["raw", "zstd", "golomb", "ans", "context"]))
    for e, pl in zip(table, payloads):
        e[4], e[5] = len(pl), zlib.crc32(pl)
    hb = C._canonical({"m": meta, "s": table})
    return struct.pack("<4sHII", MAGIC, 1, len(hb), zlib.crc32(hb)) + hb + b"".join(bytes(p) for p in payloads)


def mutate(rng: np.random.Generator, base: bytes, pool: list[bytes]) -> bytes:
    if rng.random() < 0.15:
        return mutate_meta(rng, base)
    if rng.random() < 0.4:
        return mutate_section(rng, base)
    buf = bytearray(base)
    for _ in range(int(rng.integers(1, 6))):
        op = int(rng.integers(0, 8))
        L = len(buf)
        if op == 0 and L:
            i = int(rng.integers(0, L * 8))
            buf[i // 8] ^= 1 << (i % 8)
        elif op == 1 and L:
            buf[int(rng.integers(0, L))] = int(rng.integers(0, 256))
        elif op == 2:
            del buf[int(rng.integers(0, L + 1)) :]
        elif op == 3:
            buf += rng.bytes(int(rng.integers(1, 32)))
        elif op == 4:
            i = int(rng.integers(0, L + 1))
            buf[i:i] = rng.bytes(int(rng.integers(1, 8)))
        elif op == 5 and L:
            i = int(rng.integers(0, L))
            del buf[i : i + int(rng.integers(1, 16))]
        elif op == 6:  # splice a piece of another seed
            other = pool[int(rng.integers(0, len(pool)))]
            i, j = int(rng.integers(0, len(other))), int(rng.integers(0, L + 1))
            buf[j : j + 8] = other[i : i + int(rng.integers(1, 64))]
        elif op == 7 and L > 14:  # interesting integers into the prefix or header digits
            i = int(rng.integers(0, min(L, 200)))
            buf[i : i + 1] = bytes([int(rng.choice([0, 0x7F, 0x80, 0xFF, 0x30, 0x39, 0x2D]))])
    data = bytes(buf)
    if rng.random() < 0.5:
        data = fix_crcs(data)
    return data


def worker(args):
    start, count, seed, timeout = args
    pool = seeds()
    rng = np.random.default_rng([seed, start])
    signal.signal(signal.SIGALRM, _alarm)
    crashes, hangs, outcomes = [], 0, {}
    slowest = 0.0
    for k in range(count):
        data = mutate(rng, pool[int(rng.integers(0, len(pool)))], pool)
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            c = decode(data)
            if "spec" in c.meta:  # a network: its meta layer must refuse with a FormatError too
                from_container(c)
            name = "ok"
        except Hang:
            hangs += 1
            name = "hang"
        except FormatError as e:
            name = type(e).__name__
        except Exception as e:  # a crash: not a FormatError
            name = "CRASH"
            if len(crashes) < 5:
                crashes.append((data.hex(), "".join(traceback.format_exception(e))))
            else:
                crashes.append(None)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - t)
        outcomes[name] = outcomes.get(name, 0) + 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return count, crashes, hangs, outcomes, slowest, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    chunk = 2000
    jobs = [(s, min(chunk, a.cases - s), a.seed, a.timeout) for s in range(0, a.cases, chunk)]
    t0 = time.perf_counter()
    total, crashes, hangs, outcomes, slowest, peak = 0, [], 0, {}, 0.0, 0
    with mp.get_context("fork").Pool(a.workers, maxtasksperchild=20) as p:
        for n, cr, h, oc, sl, pk in p.imap_unordered(worker, jobs):
            total += n
            crashes += cr
            hangs += h
            for k, v in oc.items():
                outcomes[k] = outcomes.get(k, 0) + v
            slowest = max(slowest, sl)
            peak = max(peak, pk)
    dt = time.perf_counter() - t0
    print(f"cases tried: {total} in {dt:.1f} s ({total / dt:.0f}/s, {a.workers} workers)")
    print(f"crashes (non-FormatError exceptions): {len(crashes)}")
    print(f"hangs (> {a.timeout} s per case): {hangs}")
    print(f"slowest case: {slowest * 1000:.1f} ms")
    print(f"peak RSS of a worker: {peak / 1024:.1f} MiB")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])))
    for c in crashes[:5]:
        if c:
            print("--- crash input (hex):", c[0][:400])
            print(c[1])
    return 0 if not crashes and not hangs else 1


if __name__ == "__main__":
    sys.exit(main())
