"""The training loop shared by every method: device, AMP, DDP, epochs, evaluation, checkpoints, resume.

Methods plug in through three hooks: ``regularizer(model) -> tensor`` added to the loss (or None when it acts
on the gradients itself, as layers.ScorePull does), ``on_epoch_end`` (e.g. a pruning step) and ``stats(model) -> dict`` (density, fraction flipped) for progress and metrics.
Progress is reported through a callback; this module never prints.

Determinism: weights and scores come from connpack.rng, the data order from connpack.data.batches (a pure
function of (seed, epoch)), and nothing draws from torch's global RNG. A run resumed from the checkpoint
written after epoch e therefore replays epochs e+1.. exactly as the uninterrupted run does.

Distributed (connpack.distributed): every rank sees the same global batches and takes its slice of each; the
loss is the *global-batch* mean (each rank sums its slice and divides by the global batch size, then DDP's
gradient average is undone by the world size), so a step is the same step as in a single process up to
the order of float additions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from connpack import atomic, data, ptfile
from connpack.distributed import Context
from connpack.errors import InputFileError, SpecError

Progress = Callable[[dict], None]
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device cuda: no CUDA device is available here")
    if name not in ("cpu", "cuda"):
        raise SpecError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def build_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """Adam (Ivan & Florian, Table A.2) or SGD with momentum (edge-popup section 4.1)."""
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise SpecError(f"unknown optimizer '{name}' (choose from {', '.join(OPTIMIZERS)})")


def build_scheduler(name: str, optimizer, epochs: int):
    """Per-epoch learning-rate schedule: none, or cosine decay to 0 over the run (edge-popup, SGD)."""
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    raise SpecError(f"unknown schedule '{name}' (choose from {', '.join(SCHEDULES)})")


@torch.no_grad()
def evaluate(
    model: nn.Module, split, device: torch.device, batch: int = 1000, ctx: Context = Context(), workers: int = 0
) -> float:
    """Accuracy on a split (connpack.data.Tensors / Streamed, or an (x, y) pair); under DDP each rank scores
    its slice and the counts are summed."""
    model.eval()
    split = data.as_split(split)
    lo, hi = ctx.slice_bounds(len(split))
    correct = torch.zeros((), dtype=torch.long, device=device)
    for xb, yb in split.loader(data.in_order(hi, batch, lo), workers, device.type == "cuda"):
        out = model(xb.to(device, non_blocking=True))
        correct += (out.argmax(1) == yb.to(device, non_blocking=True)).sum()
    return int(ctx.all_sum(correct)) / max(1, len(split))


def _checkpoint_problem(state, epochs: int) -> str | None:
    """Why a loaded checkpoint is not what ``save_checkpoint`` writes for a run of ``epochs`` (None: it is)."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint"
    missing = [k for k in ("epoch", "model", "optimizer", "scheduler", "metrics", "meta") if k not in state]
    if missing:
        return f"missing {', '.join(missing)}"
    epoch, metrics = state["epoch"], state["metrics"]
    if type(epoch) is not int or not 1 <= epoch <= epochs:
        return f"epoch {epoch!r} is not in 1..{epochs}"
    if (
        not isinstance(metrics, list)
        or len(metrics) != epoch
        or not all(isinstance(r, dict) and type(r.get("test_acc")) is float for r in metrics)
    ):
        return f"its metrics are not {epoch} rows of per-epoch figures"
    if not all(isinstance(state[k], dict) for k in ("model", "optimizer", "scheduler", "meta")):
        return "model, optimizer, scheduler and meta must be dicts"
    return None


@dataclass
class Loop:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    train: object  # connpack.data.Tensors / Streamed, or an (x, y) pair
    test: object
    epochs: int
    batch_size: int
    seed: int
    device: torch.device
    regularizer: Callable[[nn.Module], torch.Tensor | None] | None = None
    stats: Callable[[nn.Module], dict] = lambda m: {}
    on_epoch_end: Callable[[int], None] | None = None
    scheduler: object | None = None
    checkpoint: Path | None = None
    progress: Progress | None = None
    progress_every: float = 0.5  # seconds between ``step`` events (each reads the loss: one device sync)
    clock: Callable[[], float] = time.monotonic
    amp: bool = True
    ctx: Context = field(default_factory=Context)
    net: nn.Module | None = None  # what runs the forward pass: the DDP wrapper, or ``model``
    meta: dict = field(default_factory=dict)  # saved with each checkpoint; a resume must match it
    workers: int = 0  # DataLoader workers of streamed splits
    metrics: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if self.net is None:
            self.net = self.model

    def _emit(self, **event):
        if self.progress is not None and self.ctx.is_main:
            self.progress(event)

    # ------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, epoch: int) -> None:
        """Atomically write the state after ``epoch`` epochs (rank 0 only): a kill never leaves half a file."""
        if self.checkpoint is None or not self.ctx.is_main:
            return
        state = {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "metrics": list(self.metrics),
            "meta": dict(self.meta),
        }
        with atomic.atomic_path(self.checkpoint) as tmp:
            ptfile.save(state, tmp)

    def load_checkpoint(self) -> int:
        """Restore from the checkpoint; returns the number of epochs completed."""
        state = ptfile.load(self.checkpoint, map_location=self.device, what="checkpoint")
        done = state.get("epoch") if isinstance(state, dict) else None
        if type(done) is int and done > self.epochs >= 1:
            raise InputFileError(f"{self.checkpoint}: {done} epochs already done, more than --epochs {self.epochs}")
        bad = _checkpoint_problem(state, self.epochs)
        if bad:  # refused as it is: the file stays where it is
            raise InputFileError(f"{self.checkpoint}: cannot resume from this checkpoint ({bad})")
        meta = state["meta"]
        if meta != self.meta:
            diff = sorted(k for k in set(meta) | set(self.meta) if meta.get(k) != self.meta.get(k))
            raise InputFileError(
                f"{self.checkpoint}: written by a run with other settings ({', '.join(diff)}); "
                "rerun without --resume, or with the same options (a larger --epochs extends "
                "a single-phase run with --schedule none)"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"]:
                self.scheduler.load_state_dict(state["scheduler"])
        except Exception as e:
            raise InputFileError(
                f"{self.checkpoint}: cannot resume from this checkpoint ({str(e).splitlines()[0]})"
            ) from None
        self.metrics = list(state["metrics"])
        return done

    # ------------------------------------------------------------------------------------ training
    def step(self, xb: torch.Tensor, yb: torch.Tensor, global_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on this rank's slice of a global batch; returns (loss sum, correct count)."""
        use_amp = self.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = self.net(xb)
        loss_sum = F.cross_entropy(out.float(), yb, reduction="sum")
        # mean over the global batch; DDP averages gradients over ranks, hence the factor world
        total = loss_sum * (self.ctx.world / global_batch)
        term = None if self.regularizer is None else self.regularizer(self.model)
        if term is not None:  # None: the regulariser acts on the gradients itself (layers.ScorePull)
            total = total + term
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return loss_sum.detach(), (out.detach().argmax(1) == yb).sum()

    def run(self, start_epoch: int = 0) -> list[dict]:
        train, test = data.as_split(self.train), data.as_split(self.test)
        cuda = self.device.type == "cuda"
        if cuda and isinstance(train, data.Tensors) and train.nbytes() < 2**31:
            train = train.to(self.device)  # index on the GPU: no host transfer per step
        n = len(train)
        for epoch in range(start_epoch, self.epochs):
            t0 = time.perf_counter()
            self.model.train()
            order = data.batches(n, self.batch_size, self.seed, epoch)
            self._emit(event="epoch_start", epoch=epoch + 1, epochs=self.epochs, steps=len(order))
            started = last = self.clock()
            seen = 0
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            mine = [self.ctx.shard(idx) for idx in order]
            for step, (xb, yb) in enumerate(train.loader(mine, self.workers, cuda, epoch)):
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
                batch_loss, batch_correct = self.step(xb, yb, len(order[step]))
                loss_sum += batch_loss
                correct += batch_correct
                seen += len(order[step])
                now = self.clock()
                due = now - last >= self.progress_every or step + 1 == len(order)
                if due and self.progress is not None:  # by time: the loss is read (a device sync) only then
                    last = now
                    self._emit(
                        event="step",
                        epoch=epoch + 1,
                        step=step + 1,
                        steps=len(order),
                        images=seen,
                        seconds=now - started,
                        loss=float(batch_loss) / max(1, len(yb)),
                    )
            trained = self.clock() - started  # training steps only (no evaluation)
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this epoch ran with
            if self.scheduler is not None:
                self.scheduler.step()
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch)
            loss_sum, correct = self.ctx.all_sum(loss_sum), self.ctx.all_sum(correct)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(loss_sum) / n,
                "train_acc": float(correct) / n,
                "test_acc": evaluate(self.model, test, self.device, ctx=self.ctx, workers=self.workers),
                **self.stats(self.model),
                "lr": lr,
                "seconds": time.perf_counter() - t0,
                "images_per_s": seen / max(1e-9, trained),
            }
            if not math.isfinite(row["train_loss"]):
                raise SpecError(
                    f"training diverged at epoch {epoch + 1} (loss {row['train_loss']}); lower the learning rate"
                )
            self.metrics.append(row)
            self.save_checkpoint(epoch + 1)
            self._emit(event="epoch_end", **row)
        return self.metrics
