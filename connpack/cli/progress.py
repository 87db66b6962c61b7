"""Render the libraries' progress events (training steps, tensors packed, bytes fetched) with rich bars.

The libraries emit plain dict events through a callback and never print; this module draws them. On a
terminal the bar is redrawn as events arrive (the training loop sends one at least every second); in quiet
mode or when the output is not a terminal only the one line per epoch is printed.
"""

from __future__ import annotations

from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connpack.cli.common import console


def _describe(ev: dict) -> str:
    parts = [f"loss {ev['train_loss']:.4f}", f"train {ev['train_acc']:.2%}", f"test {ev['test_acc']:.2%}"]
    for key in ("pruned", "flipped", "density", "sparsity"):
        if key in ev:
            parts.append(f"{key} {ev[key]:.2%}")
    if "images_per_s" in ev:
        parts.append(f"{ev['images_per_s']:,.0f} img/s")
    return "  ".join(parts)


def clock_text(seconds: float) -> str:
    """0:07, 12:03, 1:02:03."""
    s = max(0, round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def step_info(ev: dict) -> str:
    """What a step event says beside the bar: the batch loss, images per second and the epoch's ETA."""
    parts = [f"loss {ev['loss']:.4f}"]
    seconds, step, steps = ev.get("seconds"), ev["step"], ev.get("steps")
    if seconds and seconds > 0:
        parts.append(f"{ev.get('images', 0) / seconds:,.0f} img/s")
        if steps:
            parts.append(f"ETA {clock_text(seconds * (steps - step) / step)}")
    return "  ".join(parts)


def _bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def training_progress(quiet: bool = False):
    """Yield a callback for connpack.trainers' progress events."""
    if quiet:
        yield lambda ev: None
        return
    bar = _bar("[bold]epoch {task.fields[epoch]}")
    task = {"id": None}

    def on_event(ev: dict) -> None:
        kind = ev.get("event")
        if kind == "epoch_start":
            task["id"] = bar.add_task("", total=ev["steps"], epoch=f"{ev['epoch']}/{ev['epochs']}", info="")
        elif kind == "step" and task["id"] is not None:
            bar.update(task["id"], completed=ev["step"], info=step_info(ev))
        elif kind == "epoch_end" and task["id"] is not None:
            bar.update(task["id"], info="")
            bar.console.print(f"  epoch {ev['epoch']}: {_describe(ev)}", markup=False)
        elif kind == "message":
            bar.console.print(ev["text"], markup=False)

    on_event.bar = bar  # for tests: the task's completed count
    with bar:
        yield on_event


@contextmanager
def count_progress(what: str, quiet: bool = False):
    """Yield a callback for ``{"done": i, "total": n, "name": ...}`` events (tensors packed, bytes fetched)."""
    if quiet or not console.is_terminal:
        yield lambda ev: None
        return
    bar = _bar(what)
    task = bar.add_task("", total=None, info="")

    def on_event(ev: dict) -> None:
        bar.update(task, completed=ev["done"], total=ev.get("total"), info=str(ev.get("name", "")))

    with bar:
        yield on_event


def train_summary(metrics: list[dict]) -> str:
    """Best epoch (what the papers report), final epoch, wall time and training images per second."""
    if not metrics:
        return "no epochs run"
    best, last = max(metrics, key=lambda m: m["test_acc"]), metrics[-1]
    parts = [
        f"best epoch {best['epoch']}: test {best['test_acc']:.2%}",
        f"final epoch {last['epoch']}: test {last['test_acc']:.2%}",
    ]
    if all("seconds" in m for m in metrics):
        parts.append(f"time {clock_text(sum(m['seconds'] for m in metrics))}")
    rates = [m["images_per_s"] for m in metrics if m.get("images_per_s")]
    if rates:
        parts.append(f"{len(rates) / sum(1 / r for r in rates):,.0f} images/s (training)")
    return "; ".join(parts)
