"""connpack pack: model.pt -> model.cpk (seed + entropy-coded connectivity)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import api
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
):
    """Pack a trained network into a small, safe .cpk file."""
    shape = None
    if in_shape is not None:
        try:
            shape = tuple(int(x) for x in in_shape.split(","))
        except ValueError:
            raise SpecError(f"--in-shape must be C,H,W integers, got '{in_shape}'") from None
    target = out_path(out, model, ".cpk")
    size = api.pack(model, target, arch=arch, values=values, codec=codec, in_shape=shape)
    console.print(f"wrote {target}  ({size:,} bytes)")
