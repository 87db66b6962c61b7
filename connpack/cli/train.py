"""connpack train: train a connectivity (or the dense baseline) over fixed random weights.

The options are generated from TrainConfig's fields and every registered method's Hparams fields (type,
help text), so a new option is one dataclass field. Every option defaults to "not given": the method's paper
value fills it (connpack.trainers.methods.make_config).
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import atomic
from connpack.cli.common import DataDir, console, errors, safe
from connpack.cli.progress import train_summary, training_progress
from connpack.files import check_outputs, regular_file
from connpack.trainers import make_config, methods, run
from connpack.errors import SpecError
from connpack.trainers.config import TrainConfig


def _base(tp):
    """int | None -> int."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def _option(name: str, tp, help: str) -> inspect.Parameter:
    opt = typer.Option(f"--{name.replace('_', '-')}", help=help, show_default=False)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[_base(tp)], opt]
    )


def _parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(TrainConfig)
    params = []
    for f in TrainConfig.common_fields():
        help = f.metadata.get("help", "")
        if f.name == "method":
            help = " | ".join(methods.METHODS)
        elif f.default is not None and not f.metadata.get("method_default"):
            help = f"{help} (default: {f.default})"
        params.append(_option(f.name, hints[f.name], help))
    for name, (f, owners) in methods.hparam_fields().items():
        hp_hints = typing.get_type_hints(methods.get(owners[0]).Hparams)
        default = "" if f.metadata.get("method_default") else f" (default: {f.default})"
        params.append(_option(name, hp_hints[name], f"{' | '.join(owners)}: {f.metadata.get('help', '')}{default}"))
    return params


def _fixed() -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter(
            "out",
            kw,
            default=Path("model.pt"),
            annotation=Annotated[Path, typer.Option("--out", "-o", help="output model file")],
        ),
        inspect.Parameter(
            "resume",
            kw,
            default=False,
            annotation=Annotated[
                bool, typer.Option(help="continue from <out>.ckpt; with a larger --epochs, extend a finished run")
            ],
        ),
        inspect.Parameter(
            "quiet",
            kw,
            default=False,
            annotation=Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")],
        ),
        inspect.Parameter("data_dir", kw, default=None, annotation=DataDir),
    ]


@errors
def _train(*, out: Path, resume: bool, quiet: bool, data_dir: Optional[Path], **options):
    """Train a mask (prune, edge-popup), a sign filter (flip), a pruned dense network (asni, imp) or the dense
    baseline; write model.pt (+ metrics JSON)."""
    from connpack import runfile  # torch: imported when a command runs, not for --help
    from connpack.distributed import Context

    cfg = make_config(**{"method": options.pop("method", None) or "flip", **options})
    method = methods.get(cfg.method)
    checkpoint = out.with_suffix(out.suffix + ".ckpt")
    metrics_json = out.with_suffix(".metrics.json")
    extra_paths = {tag: out.with_name(f"{out.stem}.{tag}{out.suffix}") for tag in method.outputs}
    check_outputs([checkpoint], [out, metrics_json, *extra_paths.values()])
    if resume and os.path.lexists(checkpoint):
        regular_file(checkpoint)
    main_rank = Context.from_env().is_main  # under torchrun only rank 0 prints and writes
    with training_progress(quiet or not main_rank) as progress:
        res = run(cfg, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress)
    if not main_rank:
        return
    extra = {extra_paths[tag]: desc for tag, desc in res.extra.items() if desc is not None}
    with atomic.atomic_paths(out, metrics_json, *extra) as tmps:  # all or none
        runfile.dump(tmps[0], res.trained, res.metrics)
        tmps[1].write_bytes(json.dumps(res.metrics, indent=1).encode())
        for tmp, desc in zip(tmps[2:], extra.values()):
            runfile.dump(tmp, desc)
    for ckpt in res.checkpoints:  # per-phase checkpoints, once the outputs exist (a single-phase run keeps
        ckpt.unlink(missing_ok=True)  # <out>.ckpt: --resume with a larger --epochs extends it)
    console.print(train_summary(res.metrics), markup=False)
    for path in extra:
        console.print(f"wrote {safe(path)}")
    console.print(f"wrote {safe(out)}  (metrics in {safe(metrics_json)})")
    for line in res.summary:
        console.print(line, markup=False)
    for tag, write in res.figures.items():
        path = out.with_name(f"{out.stem}.{tag}.png")
        try:
            if write(path):
                console.print(f"wrote {safe(path)}")
        except SpecError as e:  # matplotlib missing: the run's outputs are written; say so and go on
            console.print(f"no {safe(path)}: {e}", markup=False)


def command(**kwargs):
    return _train(**kwargs)


command.__doc__ = _train.__doc__
command.__signature__ = inspect.Signature(_parameters() + _fixed())
