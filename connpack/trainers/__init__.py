"""Trainers: ``train(config)`` builds the network from a spec, trains it and returns its Description.

One module per method (baseline, prune, flip, edgepopup, asni, imp), listed once in ``methods`` (the
registry); ``base`` holds the Method interface and the Session every method trains through, ``loop`` the
shared training loop, ``config`` the options every method shares (a leaf: it imports no method, and
importing this package imports none either until a function here is called).
"""

from __future__ import annotations

from pathlib import Path

from connpack.trainers.config import TrainConfig

__all__ = ["TrainConfig", "make_config", "run", "train", "network_spec"]


def make_config(method: str = "flip", **options) -> TrainConfig:
    """Resolved options: see connpack.trainers.methods.make_config."""
    from connpack.trainers import methods

    return methods.make_config(method, **options)


def network_spec(cfg: TrainConfig):
    from connpack.trainers import methods

    return methods.get(cfg.method).network_spec(cfg)


def run(
    cfg: TrainConfig,
    *,
    data_dir: Path | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress=None,
):
    """Train one network as ``cfg`` says; a connpack.trainers.base.TrainResult. Everything is validated
    before the first step. Under torchrun (WORLD_SIZE > 1) every method runs DistributedDataParallel."""
    from connpack.trainers import methods
    from connpack.trainers.base import Session

    method = methods.get(cfg.method)
    with Session.open(
        cfg, method, data_dir=data_dir, checkpoint=checkpoint, resume=resume, progress=progress
    ) as session:
        res = method.run(cfg, session)
    from connpack import data

    for desc in (res.trained, *res.extra.values()):  # the data contract: pack copies it into the .cpk
        if desc is not None:
            desc.data = data.contract(cfg.dataset)
    return res


def train(cfg: TrainConfig, **kwargs):
    """``run``, returning (the trained Description, per-epoch metrics)."""
    res = run(cfg, **kwargs)
    return res.trained, res.metrics
