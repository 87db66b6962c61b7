"""connpack pack: model.pt -> model.cpk (seed + entropy-coded connectivity)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack.cli.common import console, errors, out_path, safe
from connpack.errors import SpecError
from connpack.files import check_outputs, regular_file, shown


@errors
def command(
    model: Annotated[
        Path,
        typer.Argument(
            help="model.pt written by `connpack train`, or a PyTorch state_dict / "
            "checkpoint pruned with torch.nn.utils.prune or holding zeros"
        ),
    ],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="output .cpk (default: beside the input)")] = None,
    codec: Annotated[str, typer.Option(help="auto (smallest per section) or a codec name")] = "auto",
    values: Annotated[
        str,
        typer.Option(
            help="stored kept values: float32 | float16 | bfloat16 (lossless), or q8 | q6 | "
            "q4 (any q2..q16: quantised, per-channel steps of that many bits)"
        ),
    ] = "float32",
    max_error: Annotated[
        Optional[float],
        typer.Option(
            help="quantise values as coarsely as keeps the relative L2 error "
            "of the outputs on a fixed probe batch (or, with --error-on "
            "weights, of the weights) <= this, e.g. 0.01"
        ),
    ] = None,
    error_on: Annotated[str, typer.Option(help="what --max-error measures: outputs | weights")] = "outputs",
    max_accuracy_drop: Annotated[
        Optional[float],
        typer.Option(
            help="quantise values as coarsely as keeps test accuracy "
            "within this many points of the float32 network (on the "
            "dataset the network records, or --dataset)"
        ),
    ] = None,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="dataset folder (default: $CONNPACK_DATA or ~/.cache/connpack)")
    ] = None,
    arch: Annotated[
        Optional[str],
        typer.Option(
            help="architecture of a PyTorch state_dict, e.g. torchvision:resnet18, "
            "connpack:conv6 (default: the one whose tensors match)"
        ),
    ] = None,
    in_shape: Annotated[
        Optional[str], typer.Option(help="input C,H,W of a PyTorch state_dict (torchvision default 3,224,224)")
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option(
            help="dataset a PyTorch state_dict was trained on (recorded "
            "in the .cpk: mnist, fashion-mnist, cifar10, or any name with "
            "--mean/--std); connpack run files record theirs"
        ),
    ] = None,
    mean: Annotated[
        Optional[str], typer.Option(help="per-channel input mean, e.g. 0.485,0.456,0.406 (default: the dataset's)")
    ] = None,
    std: Annotated[Optional[str], typer.Option(help="per-channel input std, e.g. 0.229,0.224,0.225")] = None,
):
    """Pack a trained network into a small, safe .cpk file."""
    regular_file(model)
    target = out_path(out, model, ".cpk")
    check_outputs([model], [target])
    shape = None
    if in_shape is not None:
        try:
            shape = tuple(int(x) for x in in_shape.split(","))
        except ValueError:
            raise SpecError(f"--in-shape must be C,H,W integers, got '{in_shape}'") from None
    from connpack import api  # reads .pt files with torch: imported when the command runs
    from connpack import values as vq
    from connpack.cli.progress import count_progress

    vq.check_options(values, max_error, error_on, max_accuracy_drop)  # refuse bad settings before any work
    shape = api.check_in_shape(shape)
    desc = api.with_data(
        api.describe(model, arch=arch, in_shape=shape), dataset, _numbers(mean, "--mean"), _numbers(std, "--std")
    )
    with count_progress("[bold]coding tensors") as progress:
        size, choice = api.pack_values(
            desc,
            target,
            values=values,
            codec=codec,
            max_error=max_error,
            error_on=error_on,
            max_accuracy_drop=max_accuracy_drop,
            data_dir=data_dir,
            progress=progress,
        )
    if choice is not None:
        for name, quant in choice.plan.items():
            how = f"a = {quant.a:.4g} x generated weight + " if quant.a is not None else ""
            console.print(f"  {safe(name)}: {how}step {float(quant.steps[0]):.4g} ({choice.relative[name]:.4g} x rms)")
        reached = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {safe(v)}" for k, v in choice.reached.items()
        )
        console.print(f"target {choice.target}: reached {reached}")
    record = desc.data
    what = f"data: {record.describe()}" if record else "no data record: eval will need --dataset (pack --dataset NAME)"
    console.print(shown(f"wrote {target}  ({size:,} bytes; {what})"), markup=False, soft_wrap=True)


def _numbers(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise SpecError(f"{option} must be comma-separated numbers, got '{text}'") from None
    if not all(math.isfinite(v) for v in values):
        raise SpecError(f"{option} must be finite numbers, got '{text}'")
    return values
