"""Render the trainers' progress events with a rich progress bar."""
from __future__ import annotations

from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connpack.cli.common import console


def _describe(ev: dict) -> str:
    parts = [f"loss {ev['train_loss']:.4f}", f"train {ev['train_acc']:.2%}", f"test {ev['test_acc']:.2%}"]
    for key in ("pruned", "flipped", "density", "sparsity"):
        if key in ev:
            parts.append(f"{key} {ev[key]:.2%}")
    return "  ".join(parts)


@contextmanager
def training_progress(quiet: bool = False):
    """Yield a callback for connpack.trainers' progress events."""
    if quiet:
        yield lambda ev: None
        return
    bar = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=True)
    task = {"id": None}

    def on_event(ev: dict) -> None:
        kind = ev.get("event")
        if kind == "epoch_start":
            task["id"] = bar.add_task("", total=ev["steps"], epoch=f"{ev['epoch']}/{ev['epochs']}", info="")
        elif kind == "step" and task["id"] is not None:
            bar.update(task["id"], completed=ev["step"], info=f"loss {ev['loss']:.4f}")
        elif kind == "epoch_end" and task["id"] is not None:
            bar.update(task["id"], info="")
            bar.console.print(f"  epoch {ev['epoch']}: {_describe(ev)}", markup=False)
        elif kind == "message":
            bar.console.print(ev["text"], markup=False)

    with bar:
        yield on_event
