"""The full grid of the fixed-weight trainers (issue 3): every method × variant × architecture × init, one
short run each, with a table of accuracy, changed fraction, packed size and time. The test suite runs a
sample of the grid; this script runs all of it.

    python benchmarks/train_grid.py                                  # synthetic data, 1 epoch each (~10 min)
    python benchmarks/train_grid.py --dataset mnist --epochs 3 --archs lenet300
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from connpack.packing import pack
from connpack.trainers import make_config, train

METHODS = [
    ("baseline", "free"),
    ("prune", "free"),
    ("prune", "minimal"),
    ("flip", "free"),
    ("flip", "minimal"),
    ("edge-popup", "free"),
]
INITS = ("signed_constant", "kaiming_normal", "xavier_normal")
EP_INITS = ("signed_constant", "kaiming_normal", "signed_constant_scaled", "kaiming_normal_scaled")
ARCHS = ("lenet300", "conv2", "conv4", "conv6", "conv8", "resnet18")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=None, help="default: synthetic-mnist for lenet300, synthetic-cifar for convs")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--width", type=float, default=0.25, help="width multiplier of the conv nets")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    print(f"{'method':<12}{'variant':<9}{'arch':<10}{'init':<24}{'test acc':>9}{'changed':>9}{'.cpk B':>9}{'s':>7}")
    for arch, (method, variant) in itertools.product(args.archs.split(","), METHODS):
        dataset = args.dataset or ("synthetic-mnist" if arch == "lenet300" else "synthetic-cifar")
        for init in EP_INITS if method == "edge-popup" else INITS:
            own = {} if method == "edge-popup" else {"variant": variant}
            cfg = make_config(
                method=method,
                **own,
                arch=arch,
                dataset=dataset,
                init=init,
                epochs=args.epochs,
                limit=args.limit,
                device=args.device,
                width=1.0 if arch == "lenet300" else args.width,
            )
            t0 = time.perf_counter()
            desc, metrics = train(cfg)
            with tempfile.TemporaryDirectory() as tmp:
                size = pack(desc, Path(tmp) / "m.cpk")
            last = metrics[-1]
            changed = last.get("flipped", last.get("pruned"))
            print(
                f"{method:<12}{variant:<9}{arch:<10}{init:<24}{last['test_acc']:>9.2%}"
                f"{'' if changed is None else f'{changed:.1%}':>9}{size:>9,}{time.perf_counter() - t0:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
