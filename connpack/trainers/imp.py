"""Iterative magnitude pruning with rewinding, finetuning or sign re-initialisation (Paganini & Forde, section 3).

Iteration 0 trains the dense network; each of the ``iterations`` that follow prunes ``fraction`` (20%) of
the remaining connections/units (connpack.pruning.prune_step: technique, local or global), treats the kept
weights as ``reinit`` says and trains again for the same budget (SGD, constant lr 0.01, batch 32, 30 epochs):

    rewind      the kept weights return to their initial values theta0 (Frankle & Carbin's lottery ticket)
    finetune    the kept weights stay as trained
    sigma-sign  sigma_l * sign(theta0)   (sigma_l: std of layer l's initial weights; Zhou et al., appendix A.1)
    sign        sign(theta0)
    random      a fresh draw of the same init distribution with seed + 1 (Frankle & Carbin's random
                re-initialisation control: the mask without the weights it was found with)

Biases are never pruned; they (and batch norm) restart from their initial values except when finetuning
(section 3.2: rewinding affects all parameters). The ticket, i.e. the initialisation of the final sparse
network, is exactly representable: "mask" over the generated weights (rewind: mask + seed), or "ternary"
with centroids (-sigma_l, +sigma_l) or (-1, +1) (sign re-inits); finetuning has no separate ticket.
Every iteration checkpoints per epoch (``<checkpoint>.it<N>``) and a resumed run replays finished
iterations from their checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from typing import TYPE_CHECKING

from connpack.errors import SpecError
from connpack.trainers.asni import fit, fresh, network_spec
from connpack.trainers.base import Method, Session, TrainResult, check_fits
from connpack.trainers.config import TrainConfig

if TYPE_CHECKING:  # numpy too: `connpack train --help` reads the Hparams without it
    import numpy as np

    from connpack.description import Description
    from connpack.trainers.loop import Progress

REINITS = ("rewind", "finetune", "sigma-sign", "sign", "random")
RANDOM_SEED_OFFSET = 1  # reinit "random": the kept weights are generated again with seed + 1


@dataclass(frozen=True)
class Hparams:
    """Paganini & Forde section 3 (and Table 1's pruning techniques)."""

    technique: str = field(
        default="l1-us",
        metadata={"help": "l1-us l1-s l2-s linf-s random-us random-s hybrid fc-only (Paganini & Forde Table 1)"},
    )
    fraction: float = field(
        default=0.2,
        metadata={"help": "fraction of the remaining connections/units pruned per iteration (section 3: 20%)"},
    )
    iterations: int = field(default=20, metadata={"help": "pruning iterations, each followed by a full training"})
    scope: str = field(default="local", metadata={"help": "local (per layer) | global (pooled per rule)"})
    reinit: str = field(
        default="rewind",
        metadata={"help": "rewind | finetune | sigma-sign | sign (section 3.2) | random (fresh draw, seed + 1)"},
    )

    def __post_init__(self):
        check(self.technique, self.fraction, self.iterations, self.scope, self.reinit)


def check(technique: str, fraction: float, iterations: int, scope: str, reinit: str) -> None:
    from connpack import pruning

    pruning.rule_for(technique, False)
    pruning.check_fraction(fraction)
    if not (isinstance(iterations, int) and iterations >= 0):
        raise SpecError(f"imp iterations must be an integer >= 0, got {iterations!r}")
    if scope not in pruning.SCOPES:
        raise SpecError(f"imp scope must be local or global, got {scope!r}")
    if reinit not in REINITS:
        raise SpecError(f"unknown reinit '{reinit}' (choose from {', '.join(REINITS)})")


def reinit_weights(theta0: dict[str, np.ndarray], reinit: str) -> dict[str, np.ndarray]:
    """The values the kept weights restart from (the mask is applied by masked.set_weights)."""
    import numpy as np

    if reinit in ("rewind", "random"):
        return theta0
    if reinit == "sign":
        return {k: np.sign(w).astype(np.float32) for k, w in theta0.items()}
    return {k: (np.float32(w.std()) * np.sign(w)).astype(np.float32) for k, w in theta0.items()}


def random_spec(spec):
    """The spec whose generated weights the "random" reinit restarts from (same init, seed + 1)."""
    return replace(spec, rng=replace(spec.rng, seed=spec.rng.seed + RANDOM_SEED_OFFSET))


def ticket(theta0: dict[str, np.ndarray], masks: dict[str, np.ndarray], spec, dense, reinit: str) -> Description | None:
    """The final sparse network's initialisation as a Description (None when finetuning). ``theta0`` is
    what the kept weights restart from (for "random": the weights of ``random_spec(spec)``)."""
    import numpy as np

    from connpack.description import Description, TensorCode

    if reinit == "finetune":
        return None
    if reinit == "random":
        spec = random_spec(spec)
    tensors = {}
    for k, w in theta0.items():
        m = masks[k]
        if reinit in ("rewind", "random"):
            tensors[k] = TensorCode("mask", w.shape, bits=m)
        else:
            c = float(np.float32(w.std())) if reinit == "sigma-sign" else 1.0
            tensors[k] = TensorCode("ternary", w.shape, bits=m, signs=w[m] > 0, centroids=(-c, c))
    desc = Description(spec, tensors, dense)
    desc.record_hashes(desc.generated())
    return desc


@dataclass
class ImpResult:
    trained: Description  # the last iteration's trained sparse network ("values")
    ticket: Description | None  # its initialisation (see ``ticket``)
    masks: list[dict[str, np.ndarray]]  # keep-masks after each iteration (index 0: dense)
    accuracy: list[float]  # final test accuracy of each iteration
    metrics: list[dict]
    checkpoints: list[Path] = field(default_factory=list)  # to delete once the outputs are written


def run(cfg: TrainConfig, session: Session) -> ImpResult:
    from connpack import models, pruning
    from connpack.trainers import masked

    hp = cfg.hp
    spec = network_spec(cfg)
    check_fits(models.build(spec), spec)
    model = fresh(spec)
    theta0 = masked.weights(model)
    dense0 = masked.dense_state(model)
    if hp.reinit == "random":
        theta0 = masked.weights(fresh(random_spec(spec)))
    start_values = reinit_weights(theta0, hp.reinit)
    history, accuracy, metrics = [], [], []
    for it in range(hp.iterations + 1):
        if it > 0:
            new = pruning.prune_step(
                masked.weights(model),
                masked.masks(model),
                hp.technique,
                hp.fraction,
                hp.scope,
                seed=cfg.seed,
                iteration=it,
            )
            masked.set_masks(model, new)
            if hp.reinit != "finetune":
                masked.set_weights(model, start_values)
                state = model.state_dict()
                model.load_state_dict({**state, **{k: _tensor(v) for k, v in dense0.items()}})
        rows = fit(session, model, f"it{it}")
        history.append(masked.masks(model))
        accuracy.append(rows[-1]["test_acc"])
        metrics += [{"iteration": it, **r} for r in rows]
    return ImpResult(
        trained=masked.describe(model, spec),
        ticket=ticket(theta0, history[-1], spec, dense0, hp.reinit),
        masks=history,
        accuracy=accuracy,
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
) -> ImpResult:
    """``run`` in a Session of its own (the library entry point of tests and benchmarks)."""
    with Session.open(
        cfg, METHOD, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress
    ) as session:
        return run(cfg, session)


def _tensor(v: np.ndarray):
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(v))


def _iterations_figure(masks, path: Path, cfg: TrainConfig) -> bool:
    """Each layer's density and Jaccard distance to the previous iteration, as a PNG (needs matplotlib)."""
    from connpack import maskplot

    if len(masks) < 2:
        return False
    maskplot.iterations_figure(
        masks, path, title=f"IMP {cfg.arch}, {cfg.hp.technique}, {cfg.hp.fraction:g} per iteration"
    )
    return True


class Imp(Method):
    name = "imp"
    Hparams = Hparams
    extendable = False  # each iteration's training depends on the previous iteration's
    outputs = ("ticket",)

    def defaults(self, arch: str, dataset: str, optimizer: str | None) -> dict:
        """Section 3: SGD (momentum 0.9 here, as connpack's SGD), constant lr 0.01, batch 32, 30 epochs, He init."""
        return {
            "init": "kaiming_normal",
            "epochs": 30,
            "batch_size": 32,
            "optimizer": "sgd",
            "lr": 0.01,
            "weight_decay": 0.0,
            "schedule": "none",
        }

    def network_spec(self, cfg: TrainConfig):
        return network_spec(cfg)

    def run(self, cfg: TrainConfig, session: Session) -> TrainResult:
        r = run(cfg, session)
        lines = []
        for it, a in enumerate(r.accuracy):
            kept = sum(int(m.sum()) for m in r.masks[it].values())
            total = sum(m.size for m in r.masks[it].values())
            lines.append(f"iteration {it:2d}: sparsity {1 - kept / total:7.2%}   test accuracy {a:.2%}")
        return TrainResult(
            r.trained,
            r.metrics,
            extra={"ticket": r.ticket},
            checkpoints=r.checkpoints,
            summary=lines,
            figures={"iterations": lambda path: _iterations_figure(r.masks, path, cfg)},
        )


METHOD = Imp()
