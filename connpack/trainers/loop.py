"""The training loop shared by every method: device, determinism, epochs, evaluation, checkpoints, resume.

Methods plug in through three hooks: ``regularizer(model) -> tensor`` added to the loss, ``on_epoch_end``
(e.g. a pruning step) and ``stats(model) -> dict`` (density, fraction flipped) for progress and metrics.
Progress is reported through a callback; this module never prints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from connpack import atomic, data
from connpack.errors import InputFileError, SpecError

Progress = Callable[[dict], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device cuda: no CUDA device is available here")
    return torch.device(name)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch].to(device))
        correct += int((out.argmax(1).cpu() == y[i:i + batch]).sum())
    return correct / max(1, len(x))


@dataclass
class Loop:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    epochs: int
    batch_size: int
    seed: int
    device: torch.device
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None
    stats: Callable[[nn.Module], dict] = lambda m: {}
    on_epoch_end: Callable[[int], None] | None = None
    scheduler: object | None = None
    checkpoint: Path | None = None
    progress: Progress | None = None
    amp: bool = True
    metrics: list[dict] = field(default_factory=list)

    def _emit(self, **event):
        if self.progress is not None:
            self.progress(event)

    def save_checkpoint(self, epoch: int, extra: dict) -> None:
        if self.checkpoint is None:
            return
        state = {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "metrics": list(self.metrics),
            "extra": extra,
        }
        with atomic.atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> tuple[int, dict]:
        """Restore from the checkpoint; returns (epochs completed, extra)."""
        try:
            state = torch.load(self.checkpoint, map_location=self.device, weights_only=True)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"]:
                self.scheduler.load_state_dict(state["scheduler"])
        except Exception as e:
            raise InputFileError(f"{self.checkpoint}: cannot resume from this checkpoint ({str(e).splitlines()[0]})") from None
        self.metrics = list(state["metrics"])
        return int(state["epoch"]), state.get("extra", {})

    def run(self, start_epoch: int = 0, extra: Callable[[], dict] = dict) -> list[dict]:
        x, y = self.train
        use_amp = self.amp and self.device.type == "cuda"
        for epoch in range(start_epoch, self.epochs):
            t0 = time.perf_counter()
            self.model.train()
            order = data.batches(len(x), self.batch_size, self.seed, epoch)
            self._emit(event="epoch_start", epoch=epoch + 1, epochs=self.epochs, steps=len(order))
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            for step, idx in enumerate(order):
                xb, yb = x[idx].to(self.device, non_blocking=True), y[idx].to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = self.model(xb)
                    loss = F.cross_entropy(out.float(), yb)
                    total = loss + self.regularizer(self.model) if self.regularizer is not None else loss
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                self.optimizer.step()
                loss_sum += loss.detach() * len(yb)
                correct += (out.detach().argmax(1) == yb).sum()
                if (step + 1) % 200 == 0 or step + 1 == len(order):
                    self._emit(event="step", epoch=epoch + 1, step=step + 1, loss=loss.item())
            if self.scheduler is not None:
                self.scheduler.step()
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch)
            row = {
                "epoch": epoch + 1,
                "train_loss": float(loss_sum) / len(x),
                "train_acc": float(correct) / len(x),
                "test_acc": evaluate(self.model, *self.test, self.device),
                **self.stats(self.model),
                "seconds": time.perf_counter() - t0,
            }
            self.metrics.append(row)
            self.save_checkpoint(epoch + 1, extra())
            self._emit(event="epoch_end", **row)
        return self.metrics
