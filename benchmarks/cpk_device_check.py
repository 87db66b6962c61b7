"""A .cpk trained on one device (CUDA) unpacks to the same network on CPU.

Trains a short run on --device, keeps the trained network's logits on that device (float32, no autocast,
TF32 off) for a fixed batch, packs, unpacks on CPU with connpack.load and prints the largest logit difference
and the prediction agreement. The unpacked weights are regenerated from the seed on CPU, so equal bits give
equal weights; what remains is CUDA-vs-CPU float arithmetic.

    python benchmarks/cpk_device_check.py [--device cuda] [--method edge-popup] [--arch conv6]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import connpack
from connpack import data
from connpack.exporters.module import to_module
from connpack.trainers import make_config, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--method", default="edge-popup")
    ap.add_argument("--arch", default="conv6")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=2000)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = make_config(
        method=args.method,
        arch=args.arch,
        dataset="synthetic-cifar",
        epochs=1,
        limit=args.limit,
        width=args.width,
        device=args.device,
    )
    desc, metrics = train(cfg)
    x, _ = data.load("synthetic-cifar", "test", limit=256)
    device = torch.device(args.device)
    with torch.no_grad():
        ref = to_module(desc).to(device).eval()(x.to(device)).float().cpu()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.cpk"
        size = connpack.pack(desc, path)
        with torch.no_grad():
            out = connpack.load(path).eval()(x)
    diff = float((out - ref).abs().max())
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
    print(
        f"{args.method} {args.arch} trained on {args.device} (test acc {metrics[-1]['test_acc']:.2%}), "
        f".cpk {size:,} B: max |logit {args.device} - logit cpu| = {diff:.3g}, argmax agreement {agree:.2%}"
    )


if __name__ == "__main__":
    main()
