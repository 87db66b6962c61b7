"""ASNI, the Amenable Sparse Network Investigator (Damadi et al., Algorithm 1), and its four variants.

One round of dense training (all weights trained; biases and batch norm too) during which, after each
epoch e = 1..E, a global sparsity

    p(e) = alpha * sigmoid((e - beta*E) / gamma)                  (section 3.4, Algorithm 1 line 5)

is imposed by a global magnitude threshold over all prunable weights (not biases or batch norm; lines 6-7,
connpack.pruning.global_magnitude). Pruned weights stay zero and get no gradient (line 3; trainers.masked).
With the cosine policy the learning rate after epoch e is

    eta = eta0 * (1 + cos(pi*e / ((1+delta)*E))) / 2

The paper prints eta0*cos(pi*e/((1+delta)E)), which turns negative past e = (1+delta)E/2; we read it as the
usual cosine annealing, where delta > 0 keeps the final rate just above zero (as the paper says delta does).
At the end each layer l gets the centroids c+ = mean of its positive kept weights and c- = mean of its
negative kept weights (lines 12-18; 0 when a layer has none): the "amenable" initialisation is the mask,
the signs of the kept weights and these 2L numbers (a Description of kind "ternary").

Table 2's variants: D (dense, same budget), A (ASNI), C (the ASNI mask re-initialised from the centroids
and retrained), S (the ASNI mask re-initialised from the original initialisation and retrained). Biases
restart at zero and batch norm at its defaults in C and S, as the paper says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from connpack.errors import SpecError
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from connpack.trainers.base import Method, Session, TrainResult, check_fits, spec_hparams
from connpack.trainers.config import TrainConfig, parse_init

if TYPE_CHECKING:  # torch, numpy: imported by the functions that train (the CLI reads Hparams without them)
    import numpy as np
    import torch

    from connpack.description import Description
    from connpack.trainers.loop import Progress

VARIANTS = ("D", "A", "C", "S")

# Table 1 (epochs, batch, optimizer, lr, weight decay, schedule) and Table 2 (alpha %, gamma); beta = 0.5, delta = 0.06.
_ADAM = {"batch_size": 60, "optimizer": "adam", "weight_decay": 0.0, "schedule": "none"}
_SGD = {"epochs": 160, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "schedule": "cosine"}
DEFAULTS = {
    ("mnist", "lenet300"): {**_ADAM, "epochs": 50, "lr": 1.2e-3, "alpha": 98.0, "gamma": 5.0},
    ("mnist", "conv2"): {**_ADAM, "epochs": 20, "lr": 2e-4, "alpha": 99.2, "gamma": 2.0},
    ("mnist", "conv4"): {**_ADAM, "epochs": 25, "lr": 3e-4, "alpha": 98.5, "gamma": 2.0},
    ("mnist", "conv6"): {**_ADAM, "epochs": 30, "lr": 3e-4, "alpha": 98.5, "gamma": 3.0},
    ("cifar", "conv2"): {**_ADAM, "epochs": 20, "lr": 2e-4, "alpha": 98.5, "gamma": 2.0},
    ("cifar", "conv4"): {**_ADAM, "epochs": 25, "lr": 3e-4, "alpha": 95.0, "gamma": 2.0},
    ("cifar", "conv6"): {**_ADAM, "epochs": 30, "lr": 3e-4, "alpha": 94.0, "gamma": 3.0},
    ("cifar", "vgg11"): {**_SGD, "alpha": 97.0, "gamma": 16.0},
    ("cifar", "vgg13"): {**_SGD, "alpha": 98.0, "gamma": 16.0},
    ("cifar", "vgg16"): {**_SGD, "alpha": 99.0, "gamma": 16.0},
    ("cifar", "resnet18"): {**_SGD, "alpha": 97.0, "gamma": 16.0},
}
_HPARAMS = ("alpha", "gamma")


@dataclass(frozen=True)
class Hparams:
    """Algorithm 1's sparsity schedule and the cosine learning-rate scale (Damadi et al. section 3.4)."""

    alpha: float = field(
        default=98.0,
        metadata={
            "help": "final sparsity scale alpha, percent in (0, 100) "
            "(default: Damadi et al. Table 2 for the architecture)",
            "method_default": True,
        },
    )
    beta: float = field(
        default=0.5, metadata={"help": "sigmoid centre as a fraction of the epochs, in [0, 1] (section 3.4: 0.5)"}
    )
    gamma: float = field(
        default=5.0, metadata={"help": "sigmoid temperature in epochs, > 0 (default: Table 2)", "method_default": True}
    )
    delta: float = field(
        default=0.06, metadata={"help": "cosine scale delta > 0, with --schedule cosine (section 3.4: 0.06)"}
    )

    def __post_init__(self):
        check(self.alpha, self.beta, self.gamma, self.delta)


def _family(dataset: str) -> str:
    return "cifar" if "cifar" in dataset else "mnist"


def paper_defaults(arch: str, dataset: str) -> dict:
    """Table 1/2 row for (dataset, arch); the other dataset's row, or Conv-6's, where the paper has none."""
    fam = _family(dataset)
    other = "mnist" if fam == "cifar" else "cifar"
    return DEFAULTS.get((fam, arch)) or DEFAULTS.get((other, arch)) or DEFAULTS[(fam, "conv6")]


def check(alpha: float, beta: float, gamma: float, delta: float) -> None:
    if not (0.0 < float(alpha) < 100.0):
        raise SpecError(f"asni alpha (final sparsity scale, percent) must be in (0, 100), got {alpha}")
    if not (0.0 <= float(beta) <= 1.0):
        raise SpecError(f"asni beta (sigmoid centre, fraction of the epochs) must be in [0, 1], got {beta}")
    if not (float(gamma) > 0 and math.isfinite(gamma)):
        raise SpecError(f"asni gamma (sigmoid temperature) must be > 0, got {gamma}")
    if not (float(delta) > 0 and math.isfinite(delta)):
        raise SpecError(f"asni delta (cosine scale) must be > 0, got {delta}")


def sparsity_schedule(e: int, epochs: int, alpha: float, beta: float, gamma: float) -> float:
    """Global fraction of weights pruned after epoch e (1-based): alpha/100 * sigmoid((e - beta*E)/gamma)."""
    return float(alpha) / 100.0 / (1.0 + math.exp(-(e - beta * epochs) / gamma))


def lr_factor(e: int, epochs: int, delta: float) -> float:
    """Cosine factor of the learning rate after epoch e (see the module docstring)."""
    return 0.5 * (1.0 + math.cos(math.pi * e / ((1.0 + delta) * epochs)))


def centroids(w: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(c-, c+): means of the negative and of the positive kept weights (Algorithm 1, lines 13 and 15)."""
    import numpy as np

    kept = w[mask].astype(np.float64)
    neg, pos = kept[kept < 0], kept[kept > 0]
    return (float(np.float32(neg.mean())) if neg.size else 0.0, float(np.float32(pos.mean())) if pos.size else 0.0)


def amenable(
    weights: dict[str, np.ndarray], masks: dict[str, np.ndarray], spec: NetworkSpec, dense: dict[str, np.ndarray]
) -> Description:
    """The amenable initialisation: per layer the mask, the signs of the kept weights and (c-, c+)."""
    from connpack.description import Description, TensorCode

    tensors = {}
    for k, w in weights.items():
        m = masks[k]
        tensors[k] = TensorCode("ternary", w.shape, bits=m, signs=w[m] > 0, centroids=centroids(w, m))
    return Description(spec, tensors, dense)


def network_spec(cfg: TrainConfig) -> NetworkSpec:
    """LeNet-300-100 and the others with biases (as the paper); affine batch norm for VGG and ResNet."""
    from connpack import data

    meta = data.info(cfg.dataset, cfg.image_size)
    bn = "affine" if cfg.arch.startswith(("vgg", "resnet")) else "none"
    model = ModelSpec(
        arch=cfg.arch, in_shape=meta.in_shape, num_classes=meta.num_classes, width=cfg.width, bias=True, batchnorm=bn
    )
    return NetworkSpec(
        model=model,
        rng=RngSpec(seed=cfg.seed),
        init=InitSpec(parse_init(cfg.init)[0], p_positive=cfg.p_positive),
        method=cfg.method,
        hparams=spec_hparams(cfg),
    )


def fresh(spec: NetworkSpec) -> "torch.nn.Module":
    """The network at its original initialisation (generated weights, zero biases), all-ones masks."""
    from connpack import models
    from connpack.trainers import masked

    return masked.attach(models.build(spec))


def fit(session: Session, model: "torch.nn.Module", tag: str, schedule_factor=None, on_epoch_end=None) -> list[dict]:
    """Dense training of ``model`` under its masks for cfg.epochs (one phase, checkpoint ``<ckpt>.<tag>``)."""
    import torch

    from connpack.trainers import masked
    from connpack.trainers.loop import build_optimizer

    cfg = session.cfg
    opt = build_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    sched = None if schedule_factor is None else torch.optim.lr_scheduler.LambdaLR(opt, schedule_factor)
    return session.fit(model, opt, tag=tag, scheduler=sched, stats=masked.stats, on_epoch_end=on_epoch_end)


@dataclass
class AsniResult:
    accuracy: dict[str, float]  # final test accuracy of D, A, C, S (those that ran)
    sparsity: float  # fraction of prunable weights pruned by ASNI
    nonzeros: int  # kept weights (biases and batch norm not counted)
    trained: Description  # A: mask + trained kept values ("values")
    amenable: Description  # mask + signs + (c-, c+) per layer ("ternary")
    retrained: Description  # C: the amenable initialisation after retraining ("values")
    metrics: list[dict]
    checkpoints: list[Path] = field(default_factory=list)  # to delete once the outputs are written


def run(cfg: TrainConfig, session: Session, variants: tuple[str, ...] = VARIANTS) -> AsniResult:
    """Run ASNI (A) and the re-initialised (C, S) and dense (D) variants of Table 2."""
    from connpack import models, pruning
    from connpack.trainers import masked

    hp = cfg.hp
    spec = network_spec(cfg)
    check_fits(models.build(spec), spec)
    E, cosine = cfg.epochs, cfg.schedule == "cosine"
    factor = (lambda e: lr_factor(e, E, hp.delta)) if cosine else None
    metrics, acc = [], {}

    model_a = fresh(spec)

    def prune(epoch: int) -> None:
        p = sparsity_schedule(epoch + 1, E, hp.alpha, hp.beta, hp.gamma)
        masked.set_masks(model_a, pruning.global_magnitude(masked.weights(model_a), p, masked.masks(model_a)))

    rows = fit(session, model_a, "A", schedule_factor=factor, on_epoch_end=prune)
    metrics += rows
    acc["A"] = rows[-1]["test_acc"]
    w_a, m_a = masked.weights(model_a), masked.masks(model_a)
    init = amenable(w_a, m_a, spec, masked.dense_state(fresh(spec)))

    model_c = fresh(spec)
    masked.set_masks(model_c, m_a)
    masked.set_weights(model_c, {k: code.materialize(None) for k, code in init.tensors.items()})
    if "C" in variants:
        rows = fit(session, model_c, "C", schedule_factor=factor)
        metrics += rows
        acc["C"] = rows[-1]["test_acc"]
    for tag in ("S", "D"):
        if tag in variants:
            model = fresh(spec)
            if tag == "S":
                masked.set_masks(model, m_a)
            rows = fit(session, model, tag, schedule_factor=factor)
            metrics += rows
            acc[tag] = rows[-1]["test_acc"]
    kept = sum(int(m.sum()) for m in m_a.values())
    total = sum(m.size for m in m_a.values())
    return AsniResult(
        accuracy={v: acc[v] for v in VARIANTS if v in acc},
        sparsity=1.0 - kept / total,
        nonzeros=kept,
        trained=masked.describe(model_a, spec),
        amenable=init,
        retrained=masked.describe(model_c, spec),
        metrics=metrics,
        checkpoints=session.checkpoints,
    )


def train(
    cfg: TrainConfig,
    *,
    data_dir: Path | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    variants: tuple[str, ...] = VARIANTS,
) -> AsniResult:
    """``run`` in a Session of its own (the library entry point of tests and benchmarks)."""
    with Session.open(
        cfg, METHOD, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress
    ) as session:
        return run(cfg, session, variants)


class Asni(Method):
    name = "asni"
    Hparams = Hparams
    extendable = False  # the sparsity schedule is a function of the number of epochs
    outputs = ("init", "C")

    def defaults(self, arch: str, dataset: str, optimizer: str | None) -> dict:
        """Damadi et al. Table 1 for (dataset, arch); He-normal initialisation."""
        row = paper_defaults(arch, dataset)
        return {"init": "kaiming_normal", **{k: v for k, v in row.items() if k not in _HPARAMS}}

    def hparams(self, arch: str, dataset: str, given: dict):
        row = paper_defaults(arch, dataset)
        return Hparams(**{**{k: row[k] for k in _HPARAMS}, **given})

    def network_spec(self, cfg: TrainConfig) -> NetworkSpec:
        return network_spec(cfg)

    def run(self, cfg: TrainConfig, session: Session) -> TrainResult:
        r = run(cfg, session)
        return TrainResult(
            r.trained,
            r.metrics,
            extra={"init": r.amenable, "C": r.retrained},
            checkpoints=r.checkpoints,
            summary=[
                f"sparsity {r.sparsity:.2%} ({r.nonzeros:,} weights kept)   "
                + "   ".join(f"{v} {a:.2%}" for v, a in r.accuracy.items())
            ],
        )


METHOD = Asni()
