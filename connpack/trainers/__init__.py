"""Trainers: ``train(config)`` builds the network from a spec, trains it and returns its Description.

One module per family of methods; ``loop`` is the shared training loop.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from connpack.errors import SpecError
from connpack.specs import ModelSpec, NetworkSpec, RngSpec
from connpack.trainers.config import TrainConfig

if TYPE_CHECKING:  # torch is imported by the functions that train, not by `import connpack.trainers`
    import torch

    from connpack.description import Description
    from connpack.trainers.loop import Progress

__all__ = ["TrainConfig", "train", "network_spec"]


def network_spec(cfg: TrainConfig) -> NetworkSpec:
    from connpack import data
    from connpack.trainers import connectivity

    meta = data.info(cfg.dataset)
    model = ModelSpec(arch=cfg.arch, in_shape=meta.in_shape, num_classes=meta.num_classes, width=cfg.width,
                      batchnorm=connectivity.batchnorm_for(cfg.method, cfg.arch))
    init = connectivity.init_spec(cfg.init, cfg.p_positive, cfg.k, cfg.method)
    hparams = {k: v for k, v in cfg.to_dict().items() if k not in ("arch", "init", "p_positive", "seed", "device")}
    return NetworkSpec(model=model, rng=RngSpec(seed=cfg.seed), init=init, method=cfg.method, hparams=hparams)


def _check_fits(model: torch.nn.Module, spec: NetworkSpec) -> None:
    import torch

    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(2, *spec.model.in_shape))
    except RuntimeError as e:
        raise SpecError(f"architecture '{spec.model.arch}' does not fit input {spec.model.in_shape}: "
                        f"{str(e).splitlines()[0]}") from None


def train(cfg: TrainConfig, *, data_dir: Path | None = None, checkpoint: Path | None = None, resume: bool = False,
          progress: Progress | None = None) -> tuple[Description, list[dict]]:
    """Train one network as ``cfg`` says. Everything is validated before the first step.

    Under torchrun (WORLD_SIZE > 1) this runs DistributedDataParallel; see connpack.distributed.
    """
    if cfg.method in ("asni", "imp"):  # weight-training pruning: their own drivers (asni.train, imp.train)
        from connpack import data
        from connpack.trainers import asni, imp

        res = (asni if cfg.method == "asni" else imp).train(cfg, data_dir=data_dir, checkpoint=checkpoint,
                                                            resume=resume, progress=progress)
        res.trained.data = data.contract(cfg.dataset)
        return res.trained, res.metrics
    import torch

    from connpack import data, distributed, models
    from connpack.trainers import connectivity
    from connpack.trainers.loop import Loop, build_optimizer, build_scheduler, resolve_device

    spec = network_spec(cfg)
    model = models.build(spec)
    _check_fits(model, spec)
    device = resolve_device(cfg.device)
    x_train, y_train = data.load(cfg.dataset, "train", data_dir, limit=cfg.limit)
    x_test, y_test = data.load(cfg.dataset, "test", data_dir)
    ctx = distributed.Context.from_env()
    device = distributed.init(ctx, device)
    connectivity.configure(model, spec, cfg.method, k=cfg.k)
    model.to(device)
    net = distributed.wrap(model, ctx, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(cfg.optimizer, params, cfg.learning_rate(), weight_decay=cfg.weight_decay)
    torch.manual_seed(cfg.seed)
    loop = Loop(model, opt, (x_train, y_train), (x_test, y_test), cfg.epochs, cfg.batch_size, cfg.seed, device,
                regularizer=connectivity.regularizer(cfg.method, cfg.variant), stats=connectivity.stats,
                scheduler=build_scheduler(cfg.schedule, opt, cfg.epochs), checkpoint=checkpoint, progress=progress,
                ctx=ctx, net=net, meta={"spec": spec.to_json()})
    start = 0
    if resume and checkpoint is not None and checkpoint.exists():
        start = loop.load_checkpoint()
    try:
        metrics = loop.run(start)
    finally:
        distributed.shutdown(ctx)
    model.cpu()
    desc = connectivity.describe(model, spec)
    desc.data = data.contract(cfg.dataset)  # the data contract: pack copies it into the .cpk (connpack.contract)
    return desc, metrics
