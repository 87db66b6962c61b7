"""connpack train: train a connectivity (or the dense baseline) over fixed random weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import atomic, runfile
from connpack.cli.common import DataDir, console, errors
from connpack.cli.progress import training_progress
from connpack.distributed import Context
from connpack.trainers import TrainConfig, train

H = TrainConfig.help()


@errors
def command(
    method: Annotated[str, typer.Option(help=H["method"])] = "flip",
    variant: Annotated[str, typer.Option(help=H["variant"])] = "free",
    arch: Annotated[str, typer.Option(help=H["arch"])] = "lenet300",
    dataset: Annotated[str, typer.Option(help=H["dataset"])] = "mnist",
    init: Annotated[str, typer.Option(help=H["init"])] = "signed_constant",
    p_positive: Annotated[float, typer.Option(help=H["p_positive"])] = 0.5,
    seed: Annotated[int, typer.Option(help=H["seed"])] = 0,
    epochs: Annotated[int, typer.Option(help=H["epochs"])] = 10,
    batch_size: Annotated[Optional[int], typer.Option(help=H["batch_size"])] = None,
    lr: Annotated[Optional[float], typer.Option(help=H["lr"])] = None,
    optimizer: Annotated[Optional[str], typer.Option(help=H["optimizer"])] = None,
    width: Annotated[float, typer.Option(help=H["width"])] = 1.0,
    k: Annotated[float, typer.Option(help=H["k"])] = 0.5,
    device: Annotated[str, typer.Option(help=H["device"])] = "auto",
    limit: Annotated[Optional[int], typer.Option(help=H["limit"])] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=H["weight_decay"])] = None,
    schedule: Annotated[Optional[str], typer.Option(help=H["schedule"])] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output model file")] = Path("model.pt"),
    resume: Annotated[bool, typer.Option(help="continue from <out>.ckpt if it exists")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    data_dir: DataDir = None,
):
    """Train a mask (prune), a sign filter (flip) or the dense baseline; write model.pt (+ metrics JSON)."""
    cfg = TrainConfig(method=method, variant=variant, arch=arch, dataset=dataset, init=init, p_positive=p_positive,
                      seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, width=width, k=k,
                      device=device, limit=limit, weight_decay=weight_decay, schedule=schedule)
    checkpoint = out.with_suffix(out.suffix + ".ckpt")
    main_rank = Context.from_env().is_main  # under torchrun only rank 0 prints and writes
    with training_progress(quiet or not main_rank) as progress:
        desc, metrics = train(cfg, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress)
    if not main_rank:
        return
    runfile.save(out, desc, metrics)
    atomic.write_bytes(out.with_suffix(".metrics.json"), json.dumps(metrics, indent=1).encode())
    checkpoint.unlink(missing_ok=True)
    last = metrics[-1]
    console.print(f"wrote {out}  (test accuracy {last['test_acc']:.2%}; metrics in {out.with_suffix('.metrics.json')})")
