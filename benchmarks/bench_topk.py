"""Top-k selection for edge-popup: full sort vs torch.kthvalue vs torch.topk, per layer size.

Prints the median time (ms) of each way to find the kept_count(n, k) largest |scores| of one layer, plus
what connpack.layers.topk_mask (which picks a strategy per device and size) costs, fresh and warm-started
from the previous step's threshold after a training-sized drift of the scores (what a training step sees). Layer sizes are those of
LeNet-300-100, Conv6 and ResNet-18.

    python benchmarks/bench_topk.py [--device cpu|cuda] [--k 0.5] [--repeat 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from connpack.layers import kept_count, topk_mask

SIZES = {
    "lenet fc3 (100x10)": 1_000,
    "conv6 conv1 (64x3x3x3)": 1_728,
    "lenet fc2 (300x100)": 30_000,
    "conv6 conv2 (64x64x3x3)": 36_864,
    "conv6 conv4 (128x128x3x3)": 147_456,
    "lenet fc1 (784x300)": 235_200,
    "conv6 conv6 (256x256x3x3)": 589_824,
    "conv6 fc1 (4096x256)": 1_048_576,
    "resnet18 layer4 (512x512x3x3)": 2_359_296,
}


def by_sort(a, keep):
    return a.sort().values[a.numel() - keep]


def by_kthvalue(a, keep):
    return a.kthvalue(a.numel() - keep + 1).values


def by_topk(a, keep):
    return a.topk(keep, sorted=False).values.min()


def timed(fn, *args, repeat, device) -> float:
    fn(*args)
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--k", type=float, default=0.5, help="fraction of weights KEPT")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    print(f"device {device}  threads {torch.get_num_threads()}  k {args.k}  (median ms of {args.repeat})")
    print(
        f"{'layer':32s} {'n':>9s} {'sort':>8s} {'kthvalue':>9s} {'topk':>8s} {'fastest':>9s} {'topk_mask':>9s} {'warm':>7s}"
    )
    for name, n in SIZES.items():
        a = torch.rand(n, generator=gen).to(device)
        keep = kept_count(n, args.k)
        ms = {
            f.__name__[3:]: timed(f, a, keep, repeat=args.repeat, device=device)
            for f in (by_sort, by_kthvalue, by_topk)
        }
        assert by_sort(a, keep) == by_kthvalue(a, keep) == by_topk(a, keep)
        full = timed(topk_mask, a, args.k, repeat=args.repeat, device=device)
        drifted = a + 1e-3 * torch.randn(n, generator=gen).to(device)
        states = []

        def warm(x, k):
            state: dict = {}
            topk_mask(a, k, state)  # the previous step
            states.append(state)
            t0 = time.perf_counter()
            topk_mask(x, k, state)
            return time.perf_counter() - t0

        warm_ms = 1e3 * sorted(warm(drifted, args.k) for _ in range(args.repeat))[args.repeat // 2]
        best = min(ms, key=ms.get)
        print(
            f"{name:32s} {n:9d} {ms['sort']:8.3f} {ms['kthvalue']:9.3f} {ms['topk']:8.3f} {best:>9s} {full:9.3f} {warm_ms:7.3f}"
        )


if __name__ == "__main__":
    main()
