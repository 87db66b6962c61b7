"""connpack pack: model.pt -> model.cpk (seed + entropy-coded connectivity)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import runfile
from connpack.cli.common import console, errors, out_path
from connpack.pack import pack


@errors
def command(
    model: Annotated[Path, typer.Argument(help="model.pt written by `connpack train`")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="output .cpk (default: beside the input)")] = None,
    codec: Annotated[str, typer.Option(help="auto (smallest per section) or a codec name")] = "auto",
    values: Annotated[str, typer.Option(help="type of stored kept values: float32 | float16 | bfloat16")] = "float32",
):
    """Pack a trained network into a small, safe .cpk file."""
    desc, _ = runfile.load(model)
    target = out_path(out, model, ".cpk")
    size = pack(desc, target, codec=codec, values=values)
    console.print(f"wrote {target}  ({size:,} bytes)")
