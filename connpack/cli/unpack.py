"""connpack unpack: rebuild a network from its .cpk (weights regenerated and hash-checked) and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from connpack import atomic, exporters
from connpack.cli.common import MAX_WEIGHTS_DEFAULT, MaxWeights, console, errors, fail, safe
from connpack.files import check_outputs, regular_file


@errors
def command(
    model: Annotated[Path, typer.Argument(help="a .cpk file")],
    onnx: Annotated[Optional[Path], typer.Option("--onnx", help="write an ONNX graph here (which one: --kind)")] = None,
    pt: Annotated[Optional[Path], typer.Option("--pt", help="write the float32 state_dict here (torch.save)")] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="graph written by --onnx: dense (any network); compact (dead "
            "units removed: smaller and faster, same outputs); sparse-init (weights as COO "
            "sparse tensors: smaller file only); sparse (compact + COO); self-decoding "
            "(weights regenerated and masked in-graph: near the .cpk's size; mask/flip/ternary networks)",
        ),
    ] = "dense",
    raw_input: Annotated[
        Optional[bool],
        typer.Option(
            "--raw-input/--normalised-input",
            help="the ONNX graph takes "
            "raw input (pixels in [0, 1]) and normalises it itself, as the "
            ".cpk's data record says (default when it has one), or takes the "
            "input as the network saw it in training (default without a "
            "record)",
        ),
    ] = None,
    max_weights: MaxWeights = MAX_WEIGHTS_DEFAULT,
):
    """Rebuild the network bit-exactly and write it as ONNX and/or a PyTorch state_dict."""
    from connpack.cli.progress import count_progress
    from connpack.packing import load_checked  # numpy: imported when the command runs, not for --help

    if onnx is None and pt is None:
        fail("nothing to write: give --onnx OUT.onnx and/or --pt OUT.pt", 2)
    if kind not in exporters.KINDS:
        fail(f"unknown --kind '{kind}' (choose from {', '.join(exporters.KINDS)})", 2)
    regular_file(model)
    check_outputs([model], [onnx, pt])
    outputs = [p for p in (onnx, pt) if p is not None]
    with atomic.group(*outputs) as group:  # all or none (with the graph's external data, past 2 GiB)
        with count_progress("[bold]regenerating weights") as progress:  # hash-checked before torch/onnx load
            desc = load_checked(model, max_weights=max_weights, progress=progress)
        done = []
        if onnx is not None:
            from connpack import api
            from connpack.exporters.onnx_input import choose

            which = choose(desc.data, None if raw_input is None else ("raw" if raw_input else "normalised"))
            size = api.write_onnx(desc, onnx, kind, which, group=group)
            if which == "raw":
                what = f"{desc.data.describe()}, in the graph"
            else:
                what = "normalised input" + (
                    ""
                    if desc.data
                    else " (no data record in the .cpk: its normalisation is unknown; pack --dataset records it)"
                )
            if len(group.targets) > len(outputs):  # external data: protobuf cannot hold the tensors
                what += f"; tensors in {group.targets[-1].name} beside it, over protobuf's 2 GiB limit"
            done.append(f"wrote {safe(onnx)}  ({size:,} bytes, {kind} ONNX, {safe(what)})")
        if pt is not None:
            from connpack import ptfile
            from connpack.exporters.module import state_dict

            sd = state_dict(desc)
            ptfile.save(sd, group.path(pt))
            done.append(f"wrote {safe(pt)}  ({len(sd)} tensors)")
    for line in done:
        console.print(line, soft_wrap=True)
