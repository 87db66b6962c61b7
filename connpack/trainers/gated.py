"""What the connectivity methods over fixed generated weights share (baseline, prune, flip, edgepopup).

``Gated`` declares a method: the layers' gate ``mode``, the initial scores, the paper's defaults, the batch
norm, the regulariser. Importing it imports no torch and no numpy (the CLI builds its options from the methods' Hparams
without it); ``run`` and ``configure`` import what they train with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connpack.errors import SpecError
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from connpack.trainers.base import Method, Session, TrainResult, check_fits, spec_hparams
from connpack.trainers.config import TrainConfig, parse_init

if TYPE_CHECKING:  # numpy too: `connpack train --help` reads the Hparams without it
    import numpy as np

# Ivan & Florian, Table A.2 (Adam, batch 25): learning rate per architecture for (baseline, prune, flip).
# conv8 is not in the paper: it takes conv6's rates.
PAPER_LR = {
    "lenet300": {"baseline": 1e-3, "prune": 1e-3, "flip": 1e-3},
    "conv2": {"baseline": 2e-4, "prune": 3e-3, "flip": 5e-4},
    "conv4": {"baseline": 3e-4, "prune": 3e-3, "flip": 5e-4},
    "conv6": {"baseline": 3e-4, "prune": 3e-3, "flip": 5e-4},
    "conv8": {"baseline": 3e-4, "prune": 3e-3, "flip": 5e-4},
}


def paper_lr(arch: str, column: str) -> float:
    return PAPER_LR.get(arch, PAPER_LR["conv6"])[column]


@dataclass(frozen=True)
class IvanFlorianHparams:
    variant: str = field(
        default="free",
        metadata={"help": "free | minimal: minimal adds Ivan & Florian's Eq. 4 term (fewest weights kept / flipped)"},
    )

    def __post_init__(self):
        if self.variant not in ("free", "minimal"):
            raise SpecError(f"unknown variant '{self.variant}' (choose from free, minimal)")


def init_spec(init: str, p_positive: float = 0.5, scale: float = 1.0) -> InitSpec:
    """The InitSpec of a CLI init name: aliases resolved; ``*_scaled`` multiplies the std/magnitude by ``scale``
    (edge-popup section 4.5: sqrt(1/k)); p_positive is the + probability of signed_constant (I&F section 2.4)."""
    dist, scaled = parse_init(init)
    return InitSpec(dist, p_positive=p_positive if dist == "signed_constant" else 0.5, scale=scale if scaled else 1.0)


class Gated(Method):
    """A connectivity over fixed generated weights: the layers' ``mode`` gates them, only the scores train."""

    mode: str = "dense"
    lr_column: str = "baseline"  # PAPER_LR column

    def defaults(self, arch: str, dataset: str, optimizer: str | None) -> dict:
        """Ivan & Florian Table A.2: Adam, batch 25, the architecture's rate; 10 epochs."""
        optimizer = optimizer or "adam"
        return {
            "init": "signed_constant",
            "epochs": 10,
            "batch_size": 25,
            "optimizer": optimizer,
            "weight_decay": 0.0,
            "schedule": "cosine" if optimizer == "sgd" else "none",
            "lr": paper_lr(arch, self.lr_column),
        }

    def hparams(self, arch: str, dataset: str, given: dict):
        return self.Hparams(**given)

    def batchnorm(self, arch: str) -> str:
        """ResNets keep affine batch norm; the papers' LeNet/ConvN use none (I&F section 2.2)."""
        return "affine" if arch.startswith("resnet") else "none"

    def scale(self, cfg: TrainConfig) -> float:
        """Factor of the *_scaled inits."""
        return 1.0

    def scores(self, seed: int, index: int, shape: tuple) -> np.ndarray:
        """Initial scores t ~ U(0, 0.1] (Ivan & Florian section 3: every connection starts on / unflipped)."""
        from connpack import rng

        return rng.scores_uniform(seed, index, shape, 0.0, 0.1)

    def keep(self, cfg: TrainConfig) -> float:
        """Fraction of weights a top-k gate keeps (edge-popup's k)."""
        return 1.0

    def regularizer(self, cfg: TrainConfig):
        return None

    def network_spec(self, cfg: TrainConfig) -> NetworkSpec:
        from connpack import data

        meta = data.info(cfg.dataset, cfg.image_size)
        model = ModelSpec(
            arch=cfg.arch,
            in_shape=meta.in_shape,
            num_classes=meta.num_classes,
            width=cfg.width,
            batchnorm=self.batchnorm(cfg.arch),
        )
        return NetworkSpec(
            model=model,
            rng=RngSpec(seed=cfg.seed),
            init=init_spec(cfg.init, cfg.p_positive, self.scale(cfg)),
            method=cfg.method,
            hparams=spec_hparams(cfg),
        )

    def configure(self, model, spec: NetworkSpec, cfg: TrainConfig) -> None:
        """Switch every connectivity layer to this method's mode, scores from the RNG."""
        import numpy as np
        import torch

        from connpack.layers import conn_layers

        for index, (_, layer) in enumerate(conn_layers(model)):
            w = layer.weight.detach().clone()
            s = self.scores(spec.rng.seed, index, tuple(w.shape))
            layer.configure(self.mode, w, torch.from_numpy(np.ascontiguousarray(s)), k=self.keep(cfg))

    def run(self, cfg: TrainConfig, session: Session) -> TrainResult:
        import torch

        from connpack import models
        from connpack.trainers.connectivity import describe, stats
        from connpack.trainers.loop import build_optimizer, build_scheduler

        spec = self.network_spec(cfg)
        model = models.build(spec)
        check_fits(model, spec)
        self.configure(model, spec, cfg)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = build_optimizer(cfg.optimizer, params, cfg.lr, weight_decay=cfg.weight_decay)
        torch.manual_seed(cfg.seed)
        metrics = session.fit(
            model,
            opt,
            scheduler=build_scheduler(cfg.schedule, opt, cfg.epochs),
            regularizer=self.regularizer(cfg),
            stats=stats,
        )
        return TrainResult(describe(model, spec), metrics)


def minimal(cfg: TrainConfig):
    """The minimal variants' Eq. 4 term as a regulariser (connpack.layers.ScorePull), or None (free)."""
    if cfg.hp.variant != "minimal":
        return None
    from connpack.layers import ScorePull

    return ScorePull()
