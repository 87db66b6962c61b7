"""Codec figures in one run: bits vs the order-0 bound per p, row/column-structured arrays, real masks,
speeds, 25M-bit timing.

    .venv/bin/python benchmarks/bench_codecs.py [--masks model.pt ...]

--masks: model.pt files written by `connpack train` (e.g. --method imp, --method prune); every bit tensor is
coded with every codec and compared with its order-0 bound.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from connpack.formats import CODECS, Container, decode, encode, entropy_bits
from connpack.formats.codecs import applicable


def timed(f, *a, repeat=3):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f(*a)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return out, best


def bitarray_sc(bits: np.ndarray) -> int:
    """Bytes of bitarray's compressed sparse format (``bitarray.util.sc_encode``): the generic bit-array
    library's own compression, printed beside connpack's codecs for comparison (checked by a round trip)."""
    from bitarray import bitarray
    from bitarray.util import sc_decode, sc_encode

    ba = bitarray(endian="big")
    ba.frombytes(np.packbits(bits.ravel()).tobytes())
    ba = ba[: bits.size]
    blob = sc_encode(ba)
    assert sc_decode(blob) == ba
    return len(blob)


def real_masks(path: str) -> bool:
    """Every bit tensor of a trained model.pt: order-0 bound vs every codec. An IMP mask must reach 0.9x."""
    from connpack import rng, runfile
    from connpack.packing import MAGNITUDE_INITS, magnitude_order

    desc, _ = runfile.load(path)
    print(f"\nreal masks: {path} ({desc.spec.method}, {desc.spec.model.arch})")
    tot_bound = tot_best = 0.0
    for name, code in desc.tensors.items():
        if code.bits is None:
            continue
        bits = code.bits
        bound = entropy_bits(bits.size, int(bits.sum())) / 8
        sizes = {c: len(CODECS[c].encode(bits, bits.shape)) for c in applicable(bits.shape)}
        index = list(desc.tensors).index(name)
        if desc.spec.init_for(name).dist in MAGNITUDE_INITS:  # the packer may store the bits in |G| order
            g = rng.generate(desc.spec.init_for(name), desc.spec.rng.seed, index, bits.shape)
            ordered = bits.ravel()[magnitude_order(g)].reshape(bits.shape)
            sizes["|G| order"] = min(len(CODECS[c].encode(ordered, bits.shape)) for c in applicable(bits.shape))
        bc = min(sizes, key=sizes.get)
        tot_bound += bound
        tot_best += sizes[bc]
        print(
            f"  {name:24s} {str(bits.shape):>18} density {bits.mean():.4f}: bound {bound:9.0f} B, "
            f"ans {sizes['ans'] / bound:.3f}x, context {sizes.get('context', 0) / bound:.3f}x, best {bc} "
            f"{sizes[bc] / bound:.3f}x"
        )
    print(f"  all masks: {tot_best:.0f} B = {tot_best / tot_bound:.3f} x order-0 bound (target for IMP: <= 0.90)")
    return desc.spec.method != "imp" or tot_best <= 0.9 * tot_bound


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", nargs="*", default=[], help="model.pt files from `connpack train`")
    masks = ap.parse_args().masks
    rng = np.random.default_rng(2026)
    ok = True
    n = 10**6
    print(f"i.i.d. Bernoulli(p), n = {n} bits (bytes; ratio = coded / order-0 bound; limit 1.01*bound + 64 B)")
    print(
        f"{'p':>6} {'bound B':>9} " + " ".join(f"{c:>15}" for c in CODECS) + f" {'best':>8} {'ok':>3}"
        f" {'bitarray sc_encode':>18}"
    )
    speeds = {c: [0.0, 0.0, 0] for c in CODECS}
    for p in (0.5, 0.3, 0.1, 0.05, 0.02, 0.01, 0.001):
        bits = rng.random(n) < p
        bound = entropy_bits(n, int(bits.sum())) / 8
        row, best = [], None
        for c in CODECS:
            x = bits.reshape(1000, 1000) if c == "context" else bits
            pl, te = timed(CODECS[c].encode, x, x.shape, repeat=1 if c == "zstd" else 3)
            out, td = timed(CODECS[c].decode, pl, x.shape)
            assert np.array_equal(out, x)
            speeds[c][0] += te
            speeds[c][1] += td
            speeds[c][2] += 1
            row.append(f"{len(pl):>7} {len(pl) / bound:6.4f}x")
            best = len(pl) if best is None else min(best, len(pl))
        good = best <= 1.01 * bound + 64
        ok &= good
        sc = bitarray_sc(bits)
        print(
            f"{p:>6} {bound:>9.0f} "
            + " ".join(f"{r:>15}" for r in row)
            + f" {best / bound:7.4f}x {'yes' if good else 'NO'}"
            f" {sc:>9} {sc / bound:6.4f}x"
        )
    print("\nthroughput on those arrays (Mbit/s, mean over p): encode / decode")
    for c, (te, td, k) in speeds.items():
        print(f"  {c:>8}: {k * n / te / 1e6:8.0f} / {k * n / td / 1e6:8.0f}")

    print("\nrow-structured arrays (per-row density ~ Beta, shape (300, 784)); target: best <= 0.90 x order-0 bound")
    for al, be in ((0.5, 0.5), (0.3, 3.0), (2.0, 20.0)):
        dens = rng.beta(al, be, size=(300, 1))
        bits = rng.random((300, 784)) < dens
        bound = entropy_bits(bits.size, int(bits.sum())) / 8
        sizes = {c: len(CODECS[c].encode(bits, bits.shape)) for c in applicable(bits.shape)}
        bc = min(sizes, key=sizes.get)
        good = sizes[bc] <= 0.9 * bound
        if (al, be) == (0.5, 0.5):
            ok &= good
        print(
            f"  Beta({al},{be}): bound {bound:8.0f} B, ans {sizes['ans']:7d} B, context {sizes['context']:7d} B "
            f"({sizes['context'] / bound:.3f}x bound), best {bc} {sizes[bc] / bound:.3f}x"
        )
    # column structure as magnitude pruning leaves on MNIST: dead input pixels (columns) and per-row density
    cols = np.ones(784)
    img = np.zeros((28, 28))
    img[4:24, 4:24] = 1
    cols = img.ravel()
    dens = 0.15 * cols[None, :] * rng.beta(2, 2, size=(300, 1)) * 2
    bits = rng.random((300, 784)) < dens
    bound = entropy_bits(bits.size, int(bits.sum())) / 8
    cs = len(CODECS["context"].encode(bits, bits.shape))
    print(f"  dead-border input columns: bound {bound:8.0f} B, context {cs} B ({cs / bound:.3f}x bound)")
    # density that depends on the output unit AND the input pixel: logit p_ij = a_i + b_j (a block model's case)
    yy, xx = np.divmod(np.arange(784), 28)
    centre = np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / (2 * 8.0**2))
    logit = rng.normal(-2.5, 1.0, size=(300, 1)) + (3 * centre - 1.5)[None, :]
    bits = rng.random((300, 784)) < 1 / (1 + np.exp(-logit))
    bound = entropy_bits(bits.size, int(bits.sum())) / 8
    cs = CODECS["context"].encode(bits, bits.shape)
    rows_only = len(CODECS["context"].encode(bits, bits.shape, (1, 4, 0)))
    cols_only = len(CODECS["context"].encode(bits, bits.shape, (1, 0, 4)))
    print(
        f"  rows x columns (logit a_i + b_j): bound {bound:8.0f} B, context {len(cs)} B ({len(cs) / bound:.3f}x; "
        f"{cs[1]}+{cs[2]} class bits), one class per row only {rows_only / bound:.3f}x, per column only "
        f"{cols_only / bound:.3f}x"
    )
    ok &= len(cs) <= 0.9 * bound
    for path in masks:
        ok &= real_masks(path)

    print("\n25M-bit array at p = 0.5 (a 25M-weight network's mask), container encode (auto) + decode")
    bits = rng.random(25_000_000) < 0.5
    c = Container({"net": "25M"}, {"w": bits})
    data, te = timed(encode, c, repeat=1)
    out, td = timed(decode, data, repeat=3)
    assert np.array_equal(out.arrays["w"], bits)
    print(
        f"  auto encode {te:.2f} s, decode {td * 1000:.0f} ms, {len(data)} B "
        f"({len(data) * 8 / entropy_bits(bits.size, int(bits.sum())):.4f}x bound)"
    )
    for cn in ("raw", "ans", "golomb", "context"):
        x = bits.reshape(5000, 5000) if cn == "context" else bits
        pl, te = timed(CODECS[cn].encode, x, x.shape, repeat=1)
        _, td = timed(CODECS[cn].decode, pl, x.shape, repeat=2)
        print(f"  {cn:>8}: encode {te * 1000:6.0f} ms, decode {td * 1000:6.0f} ms")
    ok &= td < 1.0
    print("\nACCEPTANCE:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
