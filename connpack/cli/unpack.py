"""connpack unpack: rebuild a network from its .cpk (weights regenerated and hash-checked) and export it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import atomic
from connpack.cli.common import console, errors, fail
from connpack.pack import unpack


@errors
def command(
    model: Annotated[Path, typer.Argument(help="a .cpk file")],
    onnx: Annotated[Optional[Path], typer.Option("--onnx", help="write a dense ONNX graph here")] = None,
    pt: Annotated[Optional[Path], typer.Option("--pt", help="write the float32 state_dict here (torch.save)")] = None,
):
    """Rebuild the network bit-exactly and write it as ONNX and/or a PyTorch state_dict."""
    if onnx is None and pt is None:
        fail("nothing to write: give --onnx OUT.onnx and/or --pt OUT.pt", 2)
    desc = unpack(model)
    if onnx is not None:
        from connpack.exporters import onnx_dense

        size = onnx_dense.export(desc, onnx)
        console.print(f"wrote {onnx}  ({size:,} bytes, dense ONNX)")
    if pt is not None:
        import torch

        from connpack.exporters.module import state_dict

        sd = state_dict(desc)
        with atomic.atomic_path(pt) as tmp:
            torch.save(sd, tmp)
        console.print(f"wrote {pt}  ({len(sd)} tensors)")
