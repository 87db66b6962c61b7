"""Progress that moves: the loop emits step events by time (a fake clock here), the CLI draws them."""

import itertools

import torch

from connpack.cli.progress import clock_text, step_info, training_progress
from connpack.layers import ConnLinear
from connpack.trainers.loop import Loop


def _loop(events: list, clock) -> Loop:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 8, generator=g), torch.randint(0, 3, (200,), generator=g)
    layer = ConnLinear(8, 3)
    layer.configure("flip", torch.randn(3, 8, generator=g), torch.rand(3, 8, generator=g))
    opt = torch.optim.Adam([layer.scores], lr=1e-2)
    return Loop(
        layer,
        opt,
        (x, y),
        (x, y),
        epochs=1,
        batch_size=10,
        seed=0,
        device=torch.device("cpu"),
        progress=events.append,
        clock=clock,
    )


def test_step_events_come_by_time_not_by_step_count():
    ticks = itertools.count()
    events: list[dict] = []
    _loop(events, clock=lambda: 0.3 * next(ticks)).run()  # each step "takes" 0.3 s
    steps = [ev for ev in events if ev["event"] == "step"]
    assert any(0 < ev["step"] < 20 for ev in steps)  # the bar moves during the epoch ...
    assert len(steps) < 20  # ... without an event (a loss read, a device sync) every step
    assert steps[-1]["step"] == steps[-1]["steps"] == 20 and steps[-1]["images"] == 200
    gaps = [b["seconds"] - a["seconds"] for a, b in zip(steps, steps[1:])]
    assert max(gaps) <= 1.0 + 1e-9  # at least one update per second of training
    end = next(ev for ev in events if ev["event"] == "epoch_end")
    assert end["images_per_s"] > 0


def test_the_bar_shows_a_count_strictly_between_0_and_the_total_with_rate_and_eta():
    with training_progress() as on_event:
        on_event({"event": "epoch_start", "epoch": 1, "epochs": 1, "steps": 160})
        on_event(
            {"event": "step", "epoch": 1, "step": 37, "steps": 160, "images": 37 * 25, "seconds": 3.7, "loss": 0.5}
        )
        task = on_event.bar.tasks[0]
        assert 0 < task.completed == 37 < task.total == 160
        assert task.fields["info"] == "loss 0.5000  250 img/s  ETA 0:12"


def test_clock_text_and_a_step_without_timing():
    assert [clock_text(s) for s in (7, 723, 3723)] == ["0:07", "12:03", "1:02:03"]
    assert step_info({"step": 1, "loss": 1.0}) == "loss 1.0000"


def test_train_summary_names_the_best_and_the_final_epoch():
    from connpack.cli.progress import train_summary

    rows = [
        {"epoch": 1, "test_acc": 0.90, "seconds": 30.0, "images_per_s": 1000.0},
        {"epoch": 2, "test_acc": 0.95, "seconds": 30.0, "images_per_s": 3000.0},
        {"epoch": 3, "test_acc": 0.93, "seconds": 40.0, "images_per_s": 1500.0},
    ]
    assert train_summary(rows) == (
        "best epoch 2: test 95.00%; final epoch 3: test 93.00%; time 1:40; 1,500 images/s (training)"
    )


def test_pack_reports_each_tensor(tmp_path):
    from connpack.compare import load
    from connpack.packing import pack
    from tests.test_maskplot import VECTORS

    desc = load(VECTORS / "net_flip.cpk")
    events: list[dict] = []
    pack(desc, tmp_path / "m.cpk", progress=events.append)
    assert [(e["done"], e["total"], e["name"]) for e in events] == [
        (1, 3, "fc1.weight"),
        (2, 3, "fc2.weight"),
        (3, 3, "fc3.weight"),
    ]
    assert (tmp_path / "m.cpk").read_bytes() == (VECTORS / "net_flip.cpk").read_bytes()  # same bytes


def test_unpack_reports_progress_per_tensor():
    """Issue 18: long unpack runs move per tensor (the CLI renders these events as a bar)."""
    from pathlib import Path

    from connpack import packing

    events = []
    golden = Path(__file__).resolve().parents[1] / "formats" / "vectors" / "net_mask.cpk"
    desc = packing.load_checked(golden, progress=events.append)
    assert [e["done"] for e in events] == list(range(1, len(desc.tensors) + 1))
    assert {e["total"] for e in events} == {len(desc.tensors)} and [e["name"] for e in events] == list(desc.tensors)
