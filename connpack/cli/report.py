"""connpack report: description length per tensor against the entropy bound, and totals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from connpack.cli.common import MAX_WEIGHTS_DEFAULT, JsonFlag, MaxWeights, console, errors, safe
from connpack.files import check_outputs, regular_file, shown

if TYPE_CHECKING:
    from connpack.reporting import Report


def data_line(rep: Report) -> str:
    """The data contract in one line, or that the file has none."""
    shape = "×".join(map(str, rep.in_shape))
    if rep.data is None:
        return (
            f"data: unknown (no data record in this file; input {shape}, {rep.num_classes} outputs): "
            "eval needs --dataset"
        )
    d = rep.data
    nums = lambda vs: ", ".join(f"{v:g}" for v in vs)  # noqa: E731
    raw = f"raw in [{nums(d['range'])}]" if "range" in d else "raw range not recorded"
    classes = (
        f"{len(d['classes'])} classes: {', '.join(d['classes'])}"
        if "classes" in d
        else f"{rep.num_classes} classes (names not recorded)"
    )
    return f"data: {d['dataset']} — input {shape}, {raw}, mean ({nums(d['mean'])}) std ({nums(d['std'])}); {classes}"


COLUMNS = ("tensor", "kind", "n weights", "ones %", "codec", "bits", "bits/w ↓", "bound (bits)", "÷ bound ↓")
LEGEND = (
    "ones %: fraction of 1 bits (kept for masks, flipped for flip bits); bits/w: coded bits per weight; "
    "bound: order-0 entropy n·H(p) of the bit section; ÷ bound: coded / bound (1.000 = at the bound, "
    "below 1 = structure beyond order 0 exploited); ↓ lower is better"
)
REL_ERR = "; rel. err: estimated relative error of the stored values"


def render(rep: Report) -> None:
    method = safe(rep.method) if rep.k is None else f"{safe(rep.method)}, k = {rep.k:g} kept"
    console.print(f"{safe(rep.path)} — {safe(rep.arch)}, {method}", soft_wrap=True)  # a title never wraps
    t = Table()
    dist = any(r.distortion is not None for r in rep.rows)  # values: estimated relative error of the stored values
    for col in COLUMNS + (("rel. err",) if dist else ()):
        t.add_column(
            col,
            justify="left" if col in ("tensor", "kind", "codec") else "right",
            no_wrap=True,
            overflow="fold" if col == "tensor" else "ellipsis",
        )
    for r in rep.rows:
        t.add_row(
            safe(r.name),
            safe(r.kind),
            f"{r.elements:,}",
            "" if r.fraction is None else f"{r.fraction:.2%}",
            safe(r.codec),
            f"{r.bits:,}",
            f"{r.bits_per_weight:.4f}",
            "" if r.bound_bits is None else f"{r.bound_bits:,.0f}",
            "" if r.ratio_to_bound is None else f"{r.ratio_to_bound:.3f}",
            *(("" if r.distortion is None else f"{r.distortion:.2e}",) if dist else ()),
        )
    console.print(t)
    console.print(LEGEND + (REL_ERR if dist else ""), markup=False, style="dim")
    console.print(shown(data_line(rep)), markup=False, soft_wrap=True)  # names from the file: escaped
    d = rep.to_dict()
    tot = Table(title="totals", title_justify="left")
    tot.add_column("what")
    tot.add_column("bytes", justify="right")
    tot.add_column("× .cpk ↑", justify="right")
    tot.add_row(".cpk file", f"{rep.file_bytes:,}", "1.00")
    tot.add_row("  header", f"{rep.header_bytes:,}", f"{rep.header_bytes / rep.file_bytes:.1%} of file")
    tot.add_row(
        "  order-0 bound + header",
        f"{rep.bound_bits / 8 + rep.header_bytes:,.0f}",
        f"file = {d['file_over_bound_plus_header']:.3f} × this",
    )
    tot.add_row("float32 weights", f"{rep.float32_bytes:,}", f"{d['ratio_float32']:.1f}")
    est = " (est.)" if rep.zstd19_estimated else ""  # scaled from a sample beyond a size (reporting.zstd19_size)
    tot.add_row(f"zstd-19 of float32{est}", f"{rep.zstd19_bytes:,}", f"{d['ratio_zstd19']:.1f}")
    tot.add_row("torch.save state_dict", f"{rep.torch_save_bytes:,}", f"{d['ratio_torch_save']:.1f}")
    console.print(tot)
    console.print(
        "× .cpk: how many times larger than the .cpk file each representation is (higher: the .cpk saves more)",
        markup=False,
        style="dim",
    )
    console.print(
        f"{d['bits_per_weight']:.4f} bits per weight over {rep.weights:,} weights "
        "(bound: order-0 entropy n·H(p) of each bit section)"
    )


@errors
def command(
    model: Annotated[Path, typer.Argument(help="a .cpk file")],
    as_json: JsonFlag = False,
    plot_png: Annotated[
        Optional[Path],
        typer.Option(
            "--plot",
            help="also draw bits per weight per tensor beside "
            "the order-0 bound into this PNG, and the masks (density per "
            "output unit; the first layer's per input pixel) into "
            "<stem>.masks.png (needs connpack[plot])",
        ),
    ] = None,
    max_weights: MaxWeights = MAX_WEIGHTS_DEFAULT,
):
    """Bits per tensor against the order-0 bound n·H(p); totals against float32, zstd-19 and torch.save."""
    from connpack.reporting import plot, report

    masks_png = None if plot_png is None else plot_png.with_name(f"{plot_png.stem}.masks.png")
    regular_file(model)
    check_outputs([model], [plot_png, masks_png])
    rep = report(model, max_weights=max_weights)
    drawn = []
    if plot_png is not None:
        from connpack import compare, maskplot

        plot(rep, plot_png)
        drawn.append(plot_png)
        desc = compare.load(model, max_weights=max_weights)
        if any(c.kind in maskplot.BIT_KINDS for c in desc.tensors.values()):  # a dense network has no masks
            maskplot.masks_figure(desc, masks_png, title=f"{model.name}: {rep.arch}, {rep.method}")
            drawn.append(masks_png)
    if as_json:
        console.print_json(json.dumps(rep.to_dict()))
    else:
        render(rep)
        for path in drawn:
            console.print(f"wrote {safe(path)}")
