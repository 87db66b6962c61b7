"""connpack demo: the whole pipeline on MNIST — train → pack → unpack --onnx → eval → report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from connpack import atomic, exporters
from connpack.cli.common import DataDir, console, errors, safe
from connpack.cli.progress import training_progress
from connpack.cli.report import render


@errors
def command(
    out_dir: Annotated[Path, typer.Option(help="where the artifacts go")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="training epochs (~4-5 s each on 2 cores)")] = 5,
    method: Annotated[str, typer.Option(help="prune | flip | baseline")] = "flip",
    variant: Annotated[str, typer.Option(help="free | minimal")] = "minimal",
    dataset: Annotated[str, typer.Option(help="mnist, or synthetic-mnist for a quick look")] = "mnist",
    data_dir: DataDir = None,
):
    """Minimal sign flipping of LeNet-300-100 (signed He constant weights) on MNIST, packed and exported."""
    from connpack import runfile  # torch, onnx, onnxruntime: imported when the command runs
    from connpack.evaluate import evaluate, load_onnx
    from connpack.packing import pack, unpack
    from connpack.reporting import report
    from connpack.trainers import make_config, train

    t0 = time.perf_counter()
    cfg = make_config(method=method, variant=variant, dataset=dataset, epochs=epochs)
    model_pt, model_cpk, model_onnx = out_dir / "model.pt", out_dir / "model.cpk", out_dir / "model.onnx"
    console.rule(f"1/5 train: {variant} {method}, lenet300, {dataset}, {epochs} epochs")
    with training_progress() as progress:
        desc, metrics = train(cfg, data_dir=data_dir, progress=progress)
    runfile.save(model_pt, desc, metrics)
    atomic.write_bytes(out_dir / "model.metrics.json", json.dumps(metrics, indent=1).encode())
    console.print(f"wrote {safe(model_pt)}")
    console.rule("2/5 pack")
    size = pack(desc, model_cpk)
    console.print(f"wrote {safe(model_cpk)}  ({size:,} bytes)")
    console.rule("3/5 unpack --onnx")
    onnx_size = atomic.write_bytes(model_onnx, exporters.to_onnx(unpack(model_cpk), "dense").SerializeToString())
    console.print(
        f"wrote {safe(model_onnx)}  ({onnx_size:,} bytes, dense ONNX normalising its raw input itself, "
        "weights regenerated and hash-checked)"
    )
    console.rule("4/5 eval (onnxruntime)")
    res = evaluate(load_onnx(model_onnx), dataset, data_dir)
    console.print(
        f"accuracy {res.accuracy:.2%} on {res.examples:,} test images "
        f"(PyTorch during training: {metrics[-1]['test_acc']:.2%})"
    )
    console.rule("5/5 report")
    render(report(model_cpk))
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s; artifacts in {safe(out_dir)}/")
