"""connpack pack: model.pt -> model.cpk (seed + entropy-coded connectivity)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack.cli.common import console, errors, out_path
from connpack.errors import SpecError


@errors
def command(
    model: Annotated[Path, typer.Argument(help="model.pt written by `connpack train`, or a PyTorch state_dict / "
                                          "checkpoint pruned with torch.nn.utils.prune or holding zeros")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="output .cpk (default: beside the input)")] = None,
    codec: Annotated[str, typer.Option(help="auto (smallest per section) or a codec name")] = "auto",
    values: Annotated[str, typer.Option(help="type of stored kept values: float32 | float16 | bfloat16")] = "float32",
    arch: Annotated[Optional[str], typer.Option(help="architecture of a PyTorch state_dict, e.g. torchvision:resnet18, "
                                                "connpack:conv6 (default: the one whose tensors match)")] = None,
    in_shape: Annotated[Optional[str], typer.Option(help="input C,H,W of a PyTorch state_dict (torchvision default "
                                                    "3,224,224)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset a PyTorch state_dict was trained on (recorded "
                                                   "in the .cpk: mnist, fashion-mnist, cifar10, or any name with "
                                                   "--mean/--std); connpack run files record theirs")] = None,
    mean: Annotated[Optional[str], typer.Option(help="per-channel input mean, e.g. 0.485,0.456,0.406 (default: "
                                                "the dataset's)")] = None,
    std: Annotated[Optional[str], typer.Option(help="per-channel input std, e.g. 0.229,0.224,0.225")] = None,
):
    """Pack a trained network into a small, safe .cpk file."""
    shape = None
    if in_shape is not None:
        try:
            shape = tuple(int(x) for x in in_shape.split(","))
        except ValueError:
            raise SpecError(f"--in-shape must be C,H,W integers, got '{in_shape}'") from None
    from connpack import api  # reads .pt files with torch: imported when the command runs

    target = out_path(out, model, ".cpk")
    desc = api.with_data(api.describe(model, arch=arch, in_shape=shape), dataset, _numbers(mean, "--mean"),
                         _numbers(std, "--std"))
    size = api.pack(desc, target, values=values, codec=codec)
    record = desc.data
    what = f"data: {record.describe()}" if record else "no data record: eval will need --dataset (pack --dataset NAME)"
    console.print(f"wrote {target}  ({size:,} bytes; {what})", markup=False, soft_wrap=True)


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
