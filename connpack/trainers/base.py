"""What every method shares: the ``Method`` interface, the ``Session`` that runs its loops, its ``TrainResult``.

A method is one module that defines a ``Method`` subclass instance named ``METHOD`` (its name, its frozen
``Hparams`` dataclass with the paper's defaults and help text, its defaults for the common options, its gate
and hooks) and is listed once in ``connpack.trainers.methods``. ``Session`` owns what is not the method's:
the device, the distributed context, the data, checkpoints and progress; every method trains through
``Session.fit``, so every method runs under DDP when started by torchrun and only rank 0 writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from connpack.errors import SpecError
from connpack.specs import NetworkSpec
from connpack.trainers.config import NoHparams, TrainConfig

if TYPE_CHECKING:  # torch is imported when a method trains, not when the registry is read (CLI --help)
    import torch

    from connpack.description import Description
    from connpack.distributed import Context
    from connpack.trainers.loop import Progress

# Options that say where or how fast a run goes, not what it computes: left out of the spec and of resume checks.
RUN_ONLY = ("device", "workers")


@dataclass
class TrainResult:
    trained: Description  # the network written to --out
    metrics: list[dict]
    extra: dict[str, Description | None] = field(default_factory=dict)  # tag -> written as <stem>.<tag>.pt
    summary: list[str] = field(default_factory=list)  # lines the CLI prints after training
    checkpoints: list[Path] = field(default_factory=list)  # per-phase checkpoints, to delete once written
    figures: dict[str, Callable] = field(default_factory=dict)  # tag -> write(path) of <stem>.<tag>.png


class Method:
    """One training method. Subclasses set the class attributes and implement ``run``."""

    name: str = ""
    Hparams: type = NoHparams
    scaled_init: bool = False  # accepts the *_scaled inits (needs a fraction kept, k)
    extendable: bool = True  # --resume may raise --epochs (single-phase methods)
    outputs: tuple[str, ...] = ()  # tags of the extra networks it writes (<stem>.<tag>.pt): TrainResult.extra

    def defaults(self, arch: str, dataset: str, optimizer: str | None) -> dict:
        """Values of the common options this method's paper sets (TrainConfig fields marked method_default)."""
        return {}

    def hparams(self, arch: str, dataset: str, given: dict):
        """The method's options: ``given`` over the defaults (which may depend on the architecture and data)."""
        return self.Hparams(**given)

    def network_spec(self, cfg: TrainConfig) -> NetworkSpec:
        raise NotImplementedError

    def run(self, cfg: TrainConfig, session: "Session") -> TrainResult:
        raise NotImplementedError


def spec_hparams(cfg: TrainConfig) -> dict:
    """The options a spec records (what the run computed), without what the spec says elsewhere."""
    return {k: v for k, v in cfg.to_dict().items() if k not in ("arch", "init", "p_positive", "seed", *RUN_ONLY)}


def check_fits(model: "torch.nn.Module", spec: NetworkSpec) -> None:
    import torch

    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(2, *spec.model.in_shape))
    except RuntimeError as e:
        raise SpecError(
            f"architecture '{spec.model.arch}' does not fit input {spec.model.in_shape}: {str(e).splitlines()[0]}"
        ) from None


@dataclass
class Session:
    """Device, distributed context, data, checkpoints and progress of one training run."""

    cfg: TrainConfig
    extendable: bool
    ctx: Context
    device: torch.device
    train: tuple
    test: tuple
    checkpoint: Path | None = None
    resume: bool = False
    progress: Progress | None = None
    checkpoints: list[Path] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        cfg: TrainConfig,
        method: Method,
        *,
        data_dir: Path | None = None,
        checkpoint: Path | None = None,
        resume: bool = False,
        progress: Progress | None = None,
    ) -> "Session":
        from connpack import data, distributed
        from connpack.distributed import Context
        from connpack.trainers.loop import resolve_device

        device = resolve_device(cfg.device)
        train = data.open_split(cfg.dataset, "train", data_dir, cfg.limit, image_size=cfg.image_size, seed=cfg.seed)
        test = data.open_split(cfg.dataset, "test", data_dir, image_size=cfg.image_size)
        ctx = Context.from_env()
        device = distributed.init(ctx, device)
        return cls(
            cfg, method.extendable and cfg.schedule == "none", ctx, device, train, test, checkpoint, resume, progress
        )

    def close(self) -> None:
        from connpack import distributed

        distributed.shutdown(self.ctx)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def meta(self, tag: str | None) -> dict:
        """What a checkpoint must agree on to be resumed: every option but the run-only ones (and the number of
        epochs, where a larger one extends the run)."""
        skip = (*RUN_ONLY, "epochs") if self.extendable else RUN_ONLY
        cfg = {k: repr(v) for k, v in self.cfg.to_dict().items() if k not in skip}
        return {**cfg, **({"phase": tag} if tag else {})}

    def fit(
        self,
        model: torch.nn.Module,
        optimizer,
        *,
        tag: str | None = None,
        scheduler=None,
        regularizer: Callable | None = None,
        stats: Callable = lambda m: {},
        on_epoch_end: Callable | None = None,
    ) -> list[dict]:
        """Train ``model`` for cfg.epochs (DDP when distributed), checkpointing to ``<checkpoint>[.<tag>]``."""
        from connpack import distributed
        from connpack.trainers.loop import Loop

        cfg = self.cfg
        model.to(self.device)
        net = distributed.wrap(model, self.ctx, self.device)
        ckpt = self.checkpoint
        if ckpt is not None and tag is not None:
            ckpt = ckpt.with_name(f"{ckpt.name}.{tag}")
        progress = self.progress
        if progress is not None and tag is not None:
            progress = lambda event: self.progress({**event, "phase": tag})  # noqa: E731
        loop = Loop(
            model,
            optimizer,
            self.train,
            self.test,
            cfg.epochs,
            cfg.batch_size,
            cfg.seed,
            self.device,
            regularizer=regularizer,
            stats=stats,
            on_epoch_end=on_epoch_end,
            scheduler=scheduler,
            checkpoint=ckpt,
            progress=progress,
            ctx=self.ctx,
            net=net,
            meta=self.meta(tag),
            workers=cfg.workers,
        )
        start = 0
        if ckpt is not None:
            if tag is not None:
                self.checkpoints.append(ckpt)
            if self.resume and ckpt.exists():
                start = loop.load_checkpoint()
        rows = loop.run(start)
        model.cpu()
        return rows if tag is None else [{"phase": tag, **r} for r in rows]
