"""Trainers: ``train(config)`` builds the network from a spec, trains it and returns its Description.

One module per family of methods; ``loop`` is the shared training loop.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from connpack import data, models
from connpack.description import Description
from connpack.errors import SpecError
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from connpack.trainers import connectivity
from connpack.trainers.config import TrainConfig
from connpack.trainers.loop import Loop, Progress, resolve_device

__all__ = ["TrainConfig", "train", "network_spec"]


def network_spec(cfg: TrainConfig) -> NetworkSpec:
    meta = data.info(cfg.dataset)
    model = ModelSpec(arch=cfg.arch, in_shape=meta.in_shape, num_classes=meta.num_classes, width=cfg.width,
                      batchnorm="frozen" if cfg.method == "edge-popup" and cfg.arch.startswith("conv") else "none")
    init = InitSpec(cfg.init, p_positive=cfg.p_positive)
    hparams = {k: v for k, v in cfg.to_dict().items() if k not in ("arch", "init", "p_positive", "seed", "device")}
    return NetworkSpec(model=model, rng=RngSpec(seed=cfg.seed), init=init, method=cfg.method, hparams=hparams)


def _check_fits(model: torch.nn.Module, spec: NetworkSpec) -> None:
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(2, *spec.model.in_shape))
    except RuntimeError as e:
        raise SpecError(f"architecture '{spec.model.arch}' does not fit input {spec.model.in_shape}: "
                        f"{str(e).splitlines()[0]}") from None


def train(cfg: TrainConfig, *, data_dir: Path | None = None, checkpoint: Path | None = None, resume: bool = False,
          progress: Progress | None = None) -> tuple[Description, list[dict]]:
    """Train one network as ``cfg`` says. Everything is validated before the first step."""
    spec = network_spec(cfg)
    model = models.build(spec)
    _check_fits(model, spec)
    device = resolve_device(cfg.device)
    x_train, y_train = data.load(cfg.dataset, "train", data_dir, limit=cfg.limit)
    x_test, y_test = data.load(cfg.dataset, "test", data_dir)
    connectivity.configure(model, spec, cfg.method, k=cfg.k)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = cfg.learning_rate()
    opt = torch.optim.Adam(params, lr=lr) if cfg.optimizer == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
    torch.manual_seed(cfg.seed)
    loop = Loop(model, opt, (x_train, y_train), (x_test, y_test), cfg.epochs, cfg.batch_size, cfg.seed, device,
                regularizer=connectivity.regularizer(cfg.method, cfg.variant), stats=connectivity.stats,
                checkpoint=checkpoint, progress=progress)
    start = 0
    if resume and checkpoint is not None and checkpoint.exists():
        start, _ = loop.load_checkpoint()
    metrics = loop.run(start)
    model.cpu()
    return connectivity.describe(model, spec), metrics
