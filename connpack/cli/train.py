"""connpack train: train a connectivity (or the dense baseline) over fixed random weights."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import atomic
from connpack.cli.common import DataDir, console, errors, safe
from connpack.cli.progress import train_summary, training_progress
from connpack.files import check_outputs, regular_file
from connpack.trainers.config import TrainConfig

H = TrainConfig.help()


@errors
def command(
    method: Annotated[str, typer.Option(help=H["method"])] = "flip",
    variant: Annotated[str, typer.Option(help=H["variant"])] = "free",
    arch: Annotated[str, typer.Option(help=H["arch"])] = "lenet300",
    dataset: Annotated[str, typer.Option(help=H["dataset"])] = "mnist",
    init: Annotated[Optional[str], typer.Option(help=H["init"])] = None,
    p_positive: Annotated[float, typer.Option(help=H["p_positive"])] = 0.5,
    seed: Annotated[int, typer.Option(help=H["seed"])] = 0,
    epochs: Annotated[Optional[int], typer.Option(help=H["epochs"])] = None,
    batch_size: Annotated[Optional[int], typer.Option(help=H["batch_size"])] = None,
    lr: Annotated[Optional[float], typer.Option(help=H["lr"])] = None,
    optimizer: Annotated[Optional[str], typer.Option(help=H["optimizer"])] = None,
    width: Annotated[float, typer.Option(help=H["width"])] = 1.0,
    k: Annotated[float, typer.Option(help=H["k"])] = 0.5,
    device: Annotated[str, typer.Option(help=H["device"])] = "auto",
    limit: Annotated[Optional[int], typer.Option(help=H["limit"])] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help=H["weight_decay"])] = None,
    schedule: Annotated[Optional[str], typer.Option(help=H["schedule"])] = None,
    alpha: Annotated[Optional[float], typer.Option(help=H["alpha"])] = None,
    beta: Annotated[float, typer.Option(help=H["beta"])] = 0.5,
    gamma: Annotated[Optional[float], typer.Option(help=H["gamma"])] = None,
    delta: Annotated[float, typer.Option(help=H["delta"])] = 0.06,
    technique: Annotated[str, typer.Option(help=H["technique"])] = "l1-us",
    fraction: Annotated[float, typer.Option(help=H["fraction"])] = 0.2,
    iterations: Annotated[int, typer.Option(help=H["iterations"])] = 20,
    scope: Annotated[str, typer.Option(help=H["scope"])] = "local",
    reinit: Annotated[str, typer.Option(help=H["reinit"])] = "rewind",
    out: Annotated[Path, typer.Option("--out", "-o", help="output model file")] = Path("model.pt"),
    resume: Annotated[bool, typer.Option(help="continue from <out>.ckpt if it exists")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    data_dir: DataDir = None,
):
    """Train a mask (prune), a sign filter (flip) or the dense baseline; write model.pt (+ metrics JSON)."""
    from connpack import runfile  # torch: imported when a command runs, not for --help
    from connpack.distributed import Context
    from connpack.trainers import train

    cfg = TrainConfig(method=method, variant=variant, arch=arch, dataset=dataset, init=init, p_positive=p_positive,
                      seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, width=width, k=k,
                      device=device, limit=limit, weight_decay=weight_decay, schedule=schedule, alpha=alpha, beta=beta,
                      gamma=gamma, delta=delta, technique=technique, fraction=fraction, iterations=iterations,
                      scope=scope, reinit=reinit)
    checkpoint = out.with_suffix(out.suffix + ".ckpt")
    metrics_json = out.with_suffix(".metrics.json")
    extras = {"asni": ("init", "C"), "imp": ("ticket",)}.get(cfg.method, ())
    extra_paths = [out.with_name(f"{out.stem}.{tag}{out.suffix}") for tag in extras]
    check_outputs([checkpoint], [out, metrics_json, *extra_paths])
    if resume and os.path.lexists(checkpoint):
        regular_file(checkpoint)
    main_rank = Context.from_env().is_main  # under torchrun only rank 0 prints and writes
    if cfg.method in ("asni", "imp"):
        with training_progress(quiet) as progress:
            return _pruned(cfg, out, checkpoint, resume, progress, data_dir)
    with training_progress(quiet or not main_rank) as progress:
        desc, metrics = train(cfg, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress)
    if not main_rank:
        return
    done = f"wrote {safe(out)}  (metrics in {safe(metrics_json)})"
    with atomic.atomic_paths(out, metrics_json) as (tmp_out, tmp_metrics):  # both or neither
        runfile.dump(tmp_out, desc, metrics)
        tmp_metrics.write_bytes(json.dumps(metrics, indent=1).encode())
    checkpoint.unlink(missing_ok=True)  # only once the outputs exist
    console.print(train_summary(metrics), markup=False)
    console.print(done)


def _pruned(cfg: TrainConfig, out: Path, checkpoint: Path, resume: bool, progress, data_dir) -> None:
    """ASNI (A -> out, amenable init -> <stem>.init.pt, C -> <stem>.C.pt) or IMP (out, ticket -> <stem>.ticket.pt)."""
    from connpack import runfile
    from connpack.trainers import asni, imp

    driver = asni if cfg.method == "asni" else imp
    res = driver.train(cfg, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress)
    extra = {"init": res.amenable, "C": res.retrained} if cfg.method == "asni" else {"ticket": res.ticket}
    extra = {out.with_name(f"{out.stem}.{tag}{out.suffix}"): desc for tag, desc in extra.items() if desc is not None}
    metrics_json = out.with_suffix(".metrics.json")
    with atomic.atomic_paths(out, metrics_json, *extra) as tmps:  # all or none
        runfile.dump(tmps[0], res.trained, res.metrics)
        tmps[1].write_bytes(json.dumps(res.metrics, indent=1).encode())
        for tmp, desc in zip(tmps[2:], extra.values()):
            runfile.dump(tmp, desc)
    for ckpt in res.checkpoints:  # only once the outputs exist
        ckpt.unlink(missing_ok=True)
    for path in extra:
        console.print(f"wrote {safe(path)}")
    console.print(f"wrote {safe(out)}")
    if cfg.method == "asni":
        console.print(f"sparsity {res.sparsity:.2%} ({res.nonzeros:,} weights kept)   "
                      + "   ".join(f"{v} {a:.2%}" for v, a in res.accuracy.items()))
    else:
        for it, a in enumerate(res.accuracy):
            kept = sum(int(m.sum()) for m in res.masks[it].values())
            total = sum(m.size for m in res.masks[it].values())
            console.print(f"iteration {it:2d}: sparsity {1 - kept / total:7.2%}   test accuracy {a:.2%}")
        _iterations_png(res.masks, out.with_name(f"{out.stem}.iterations.png"), cfg)


def _iterations_png(masks, path: Path, cfg: TrainConfig) -> None:
    """IMP: each layer's density and Jaccard distance to the previous iteration, as a PNG (needs matplotlib)."""
    from connpack import maskplot
    from connpack.errors import SpecError

    if len(masks) < 2:
        return
    try:
        maskplot.iterations_figure(masks, path, title=f"IMP {cfg.arch}, {cfg.technique}, {cfg.fraction:g} per iteration")
    except SpecError as e:  # matplotlib missing: the run's outputs are written; say so and go on
        console.print(f"no {safe(path)}: {e}", markup=False)
        return
    console.print(f"wrote {safe(path)}")
