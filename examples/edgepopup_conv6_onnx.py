"""Train edge-popup (Ramanujan et al., "What's hidden in a randomly weighted neural network?") on a Conv6,
pack it and export ONNX that onnxruntime runs.

Edge-popup keeps the top k of |scores| per layer over fixed random weights (Algorithm 1), so the packed
file is the seed plus one mask bit pattern per layer.

    python examples/edgepopup_conv6_onnx.py --dataset cifar10 --data-dir DIR      # the paper's setting
    python examples/edgepopup_conv6_onnx.py --dataset synthetic-cifar --epochs 1 --limit 256 --width 0.25
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import connpack
from connpack import data, runfile
from connpack.trainers import make_config, train


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10", help="cifar10 (needs --data-dir) or synthetic-cifar")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=None, help="default: the trainer's")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    ap.add_argument("--k", type=float, default=0.5, help="fraction of weights kept per layer")
    ap.add_argument("--width", type=float, default=1.0, help="width multiplier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", default="dense", help="ONNX graph: dense | compact | sparse | self-decoding ...")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the files here (default: a temp dir)")
    args = ap.parse_args(argv)

    out = args.out_dir or Path(tempfile.mkdtemp(prefix="connpack-edgepopup-"))
    cfg = make_config(
        method="edge-popup",
        arch="conv6",
        dataset=args.dataset,
        epochs=args.epochs,
        limit=args.limit,
        k=args.k,
        width=args.width,
        seed=args.seed,
    )
    desc, metrics = train(cfg, data_dir=args.data_dir)
    runfile.save(out / "model.pt", desc, metrics)
    size = connpack.pack(out / "model.pt", out / "model.cpk")
    onnx_size = connpack.export_onnx(out / "model.cpk", out / "model.onnx", kind=args.kind)

    raw, y = data.load(args.dataset, "test", args.data_dir, raw=True)  # the graph normalises raw input itself
    with torch.no_grad():  # PyTorch gets the input normalised as the network records it
        reference = connpack.load(out / "model.cpk")(data.normalise(raw, desc.data.mean, desc.data.std)).numpy()
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"input": raw[i : i + 500].numpy()})[0] for i in range(0, len(raw), 500)])
    accuracy = float((logits.argmax(1) == y.numpy()).mean())
    agree = float((logits.argmax(1) == reference.argmax(1)).mean())

    rep = connpack.report(out / "model.cpk")
    print(
        f"edge-popup conv6 (width {args.width}, k {args.k}) on {args.dataset}: "
        f"test accuracy {metrics[-1]['test_acc']:.2%} in PyTorch, {accuracy:.2%} in onnxruntime "
        f"({agree:.2%} same predictions)"
    )
    print(
        f"{out / 'model.cpk'}: {size:,} bytes ({size * 8 / rep.weights:.4f} bits per weight over "
        f"{rep.weights:,} weights; float32 weights {rep.float32_bytes:,} bytes); "
        f"{out / 'model.onnx'}: {onnx_size:,} bytes ({args.kind})"
    )
    return {"accuracy": accuracy, "agree": agree, "cpk_bytes": size, "metrics": metrics, "weights": rep.weights}


if __name__ == "__main__":
    main()
