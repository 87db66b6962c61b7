"""edge-popup (Ramanujan et al., "What's hidden in a randomly weighted neural network?", section 3).

W * h(|s|), h = 1 on the top fraction k of each layer's scores; scores s ~ Kaiming uniform (section 4.1).
Section 4.1's CIFAR-10 recipe: SGD, momentum 0.9, lr 0.1, cosine decay, weight decay 1e-4 (on the scores),
batch 128; batch norm without affine parameters in conv nets and ResNets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connpack.errors import SpecError
from connpack.specs import InitSpec
from connpack.trainers.gated import Gated, paper_lr

if TYPE_CHECKING:
    import numpy as np

# Scores: Kaiming uniform with a = sqrt(5) (nn.Linear/Conv2d's default), bound 1/sqrt(fan_in).
SCORE_INIT = InitSpec("kaiming_uniform", gain=math.sqrt(2.0 / 6.0))


@dataclass(frozen=True)
class Hparams:
    k: float = field(
        default=0.5,
        metadata={
            "help": "fraction of weights KEPT per layer, in (0, 1] (edge-popup Fig. 3 sweeps it; 0.5 is its best)"
        },
    )

    def __post_init__(self):
        if not (0.0 < self.k <= 1.0):
            raise SpecError(f"k (fraction of weights kept) must be in (0, 1], got {self.k}")


class EdgePopup(Gated):
    name = "edge-popup"
    Hparams = Hparams
    mode = "topk"
    scaled_init = True

    def defaults(self, arch: str, dataset: str, optimizer: str | None) -> dict:
        """Section 4.1: SGD, lr 0.1, cosine, weight decay 1e-4, batch 128 (with Adam: I&F's pruning rate)."""
        optimizer = optimizer or "sgd"
        sgd = optimizer == "sgd"
        return {
            "init": "signed_constant",
            "epochs": 10,
            "batch_size": 128,
            "optimizer": optimizer,
            "weight_decay": 1e-4,
            "schedule": "cosine" if sgd else "none",
            "lr": 0.1 if sgd else paper_lr(arch, "prune"),
        }

    def batchnorm(self, arch: str) -> str:
        """Frozen batch norm (no affine; section 4.1) in conv nets and ResNets."""
        return "frozen" if arch.startswith(("conv", "resnet")) else "none"

    def scale(self, cfg) -> float:
        return math.sqrt(1.0 / cfg.hp.k)  # section 4.5: std x sqrt(1/k)

    def scores(self, seed: int, index: int, shape: tuple) -> np.ndarray:
        from connpack import rng

        return rng.generate(SCORE_INIT, seed, index, shape, stream=rng.STREAM_SCORES)

    def keep(self, cfg) -> float:
        return cfg.hp.k


METHOD = EdgePopup()
