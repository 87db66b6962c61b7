"""connpack bench: latency, throughput, size, session time and memory of every export of one network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from connpack.cli.common import MAX_WEIGHTS_DEFAULT, JsonFlag, MaxWeights, console, errors, safe
from connpack.files import regular_file

if TYPE_CHECKING:
    from connpack.bench import BenchResult


def render(res: BenchResult) -> None:
    ratios = res.ratios()
    t = Table(
        title=f"{safe(res.source)}: {res.threads} thread(s), {res.runs} runs at batch 1 and {max(10, res.runs // 5)} "
        f"at batch {res.batch}, after {res.warmup} warm-up; {res.cpu_count} CPUs",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    cols = ("variant", "bytes", "load", "RSS", "p50", "p90", "img/s", "×b1", f"×b{res.batch}")
    for col in cols:
        t.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    for r in res.rows:
        q = ratios.get(r.variant, {})
        t.add_row(
            safe(r.variant),
            fmt(r.file_bytes, ","),
            f"{r.session_s:.3f}",
            fmt(r.rss_mb, ".1f"),
            f"{r.p50_ms:.3f}",
            f"{r.p90_ms:.3f}",
            f"{r.throughput:,.0f}",
            fmt(q.get("speedup_b1"), ".2f"),
            fmt(q.get("speedup_batch"), ".2f"),
        )
    console.print(t)
    for r in res.rows:
        console.print(
            f"{safe(r.variant)} ({safe(r.runtime)}): {safe(r.note)}; max|Δ| {r.max_abs_diff:.1e}, "
            f"argmax agrees {r.argmax_agree:.0%}"
        )
    for variant, why in res.skipped.items():
        console.print(f"{safe(variant)}: not applicable: {safe(why)}")
    console.print(
        f"load: session creation, s; RSS: MB; p50/p90: latency at batch 1, ms; img/s: throughput at batch "
        f"{res.batch}; ×b1 / ×b{res.batch}: speed vs onnxruntime dense (p50 / img/s); max|Δ|: vs the first "
        f"row at batch {res.batch}. Memory: {res.memory}. Inputs: {res.inputs}."
    )


@errors
def command(
    model: Annotated[Path, typer.Argument(help="a .cpk, a connpack model.pt, or any .onnx file")],
    threads: Annotated[int, typer.Option("--threads", help="threads for onnxruntime and PyTorch (pinned)")] = 1,
    runs: Annotated[int, typer.Option("--runs", help="timed runs at batch 1 (batch runs: runs/5, at least 10)")] = 200,
    batch: Annotated[int, typer.Option("--batch", help="batch size for the throughput figure")] = 64,
    warmup: Annotated[int, typer.Option("--warmup", help="untimed runs before timing")] = 10,
    as_json: JsonFlag = False,
    max_weights: MaxWeights = MAX_WEIGHTS_DEFAULT,
):
    """Time PyTorch eager and onnxruntime on every ONNX export kind (dense, sparse-init, compact, sparse, self-decoding)."""
    from connpack.bench import bench  # numpy and the runtimes: imported when the command runs, not for --help

    regular_file(model)
    res = bench(model, threads=threads, runs=runs, batch=batch, warmup=warmup, max_weights=max_weights)
    if as_json:
        console.print_json(json.dumps(res.to_dict(), allow_nan=False))
    else:
        render(res)
