"""Iterative pruning grid (Paganini & Forde, Table 2 left and right, appendix D): test accuracy of each
technique at each pruning iteration, the averaged-prediction ensemble of all techniques ("all"), and the
mean per-layer Jaccard distance of each technique's final mask to L1-unstructured's (same seed).

The paper: LeNet on MNIST, SGD lr 0.01, batch 32, 30 epochs per iteration, 20 iterations, rewinding.
On a CPU run a small setting, e.g.

    nice -n 10 .venv/bin/python benchmarks/imp_grid.py --arch conv2 --width 0.25 --limit 5000 --epochs 1 --iterations 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from connpack import compare, pruning
from connpack.trainers import make_config, imp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="conv2")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--reinit", default="rewind")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--techniques", default=",".join(pruning.TECHNIQUES))
    args = ap.parse_args()
    techniques = args.techniques.split(",")
    results, t0 = {}, time.perf_counter()
    for tech in techniques:
        cfg = make_config(
            method="imp",
            arch=args.arch,
            width=args.width,
            dataset=args.dataset,
            limit=args.limit,
            epochs=args.epochs,
            iterations=args.iterations,
            technique=tech,
            reinit=args.reinit,
            device=args.device,
        )
        results[tech] = imp.train(cfg)
    print(
        f"IMP grid: {args.arch} x{args.width} on {args.dataset} (limit {args.limit}), {args.epochs} epoch(s) per "
        f"iteration, {args.iterations} iterations, reinit {args.reinit}  ({(time.perf_counter() - t0) / 60:.1f} min)"
    )
    print("iter  " + "".join(f"{t:>11}" for t in techniques))
    for it in range(args.iterations + 1):
        print(f"{it:4d}  " + "".join(f"{results[t].accuracy[it]:11.2%}" for t in techniques))
    final = [results[t].trained for t in techniques]
    res = compare.compare(final, techniques, dataset=args.dataset)
    print(f"final iteration: averaged-prediction ensemble of all {len(final)}: {res.ensemble_accuracy:.2%}")
    print("explicit / effective sparsity (appendix B) and mean Jaccard distance to l1-us:")
    ref = techniques.index("l1-us") if "l1-us" in techniques else 0
    for i, t in enumerate(techniques):
        pair = (min(i, ref), max(i, ref))
        jac = 0.0 if i == ref else float(np.mean(res.jaccard[pair]))
        eff = "n/a" if res.effective[i] is None else f"{res.effective[i]:.2%}"
        print(f"   {t:>10}: {res.sparsity[i]:7.2%} / {eff:>7}   jaccard {jac:.3f}")


if __name__ == "__main__":
    main()
