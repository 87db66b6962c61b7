"""Training options shared by every method, as one frozen dataclass with the help text beside each field.

A leaf module: it imports no method. A method's own options are its frozen ``Hparams`` dataclass (in the
method's module), held in ``TrainConfig.hp``; ``connpack.trainers.methods.make_config`` fills the defaults
that depend on the method (the papers' tables) and builds both, so every field here is resolved.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from connpack.errors import SpecError

MAX_WIDTH = 64.0
"""Largest width multiplier (conv8 at 64x already has ~10^10 weights)."""

# Names users type for the weight distributions (CLI --init) -> connpack.rng / InitSpec names.
INIT_ALIASES = {
    "he": "kaiming_normal",
    "he_normal": "kaiming_normal",
    "glorot": "xavier_normal",
    "glorot_normal": "xavier_normal",
    "he_constant": "signed_constant",
    "signed_he_constant": "signed_constant",
    "signed_kaiming_constant": "signed_constant",
}
INITS = ("signed_constant", "kaiming_normal", "xavier_normal", "kaiming_uniform")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "cosine")
DEVICES = ("auto", "cpu", "cuda")


def parse_init(name: str, scaled_ok: bool = True) -> tuple[str, bool]:
    """'kaiming_normal_scaled' -> ('kaiming_normal', True). ``scaled_ok``: the method knows a fraction kept k
    (the x sqrt(1/k) scaling of edge-popup section 4.5)."""
    scaled = name.endswith("_scaled")
    base = name[: -len("_scaled")] if scaled else name
    base = INIT_ALIASES.get(base, base)
    if base not in INITS:
        raise SpecError(
            f"unknown init '{name}' (choose from {', '.join(INITS)}, aliases "
            f"{', '.join(INIT_ALIASES)}, each optionally with _scaled)"
        )
    if scaled and not scaled_ok:
        raise SpecError(f"init '{name}': the _scaled variants (std x sqrt(1/k)) are for --method edge-popup")
    return base, scaled


def _opt(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class NoHparams:
    """A method without options of its own."""


@dataclass(frozen=True)
class TrainConfig:
    """Every field resolved (``make_config`` fills the method's defaults); ``hp`` holds the method's options.

    Fields with ``"method_default": True`` in their metadata take the method's paper value when not given.
    """

    method: str = _opt("flip", "training method (see `connpack train --help` for the list)")
    arch: str = _opt("lenet300", "architecture name from the registry")
    dataset: str = _opt("mnist", "mnist | fashion-mnist | cifar10 | cifar100 | imagefolder:DIR | synthetic-*")
    init: str = _opt(
        "signed_constant",
        "signed_constant (he_constant) | kaiming_normal (he) | xavier_normal "
        "(glorot) | kaiming_uniform; append _scaled for edge-popup's std x sqrt(1/k) "
        "(default: the method's paper)",
        method_default=True,
    )
    p_positive: float = _opt(0.5, "signed_constant: probability of a + sign")
    seed: int = _opt(0, "seeds weights, scores and data order")
    epochs: int = _opt(10, "training epochs (default: the method's paper)", method_default=True)
    batch_size: int = _opt(25, "global batch size (default: the method's paper)", method_default=True)
    lr: float = _opt(1e-3, "learning rate (default: the method's paper for the architecture)", method_default=True)
    optimizer: str = _opt("adam", "adam | sgd (momentum 0.9) (default: the method's paper)", method_default=True)
    width: float = _opt(1.0, "width multiplier of hidden layers")
    device: str = _opt("auto", "auto | cpu | cuda")
    limit: int | None = _opt(None, "use only the first N training examples")
    weight_decay: float = _opt(0.0, "weight decay (default: the method's paper)", method_default=True)
    schedule: str = _opt("none", "none | cosine (default: the method's paper)", method_default=True)
    workers: int = _opt(0, "data-loading worker processes for streamed datasets (imagefolder)")
    image_size: int = _opt(224, "imagefolder: side of the training crop and of the test centre crop")
    hp: object = field(default_factory=NoHparams, metadata={"help": ""})

    def __post_init__(self):
        for f in self.common_fields():  # nan / inf reach no optimizer
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"{f.name.replace('_', '-')} must be a finite number, got {value}")
        if not 0 < self.width <= MAX_WIDTH:
            raise SpecError(f"width multiplier must be in (0, {MAX_WIDTH:g}], got {self.width:g}")
        parse_init(self.init)
        if self.weight_decay < 0 or self.schedule not in SCHEDULES:
            raise SpecError(
                f"weight decay must be >= 0 and schedule none|cosine, got {self.weight_decay}, {self.schedule!r}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise SpecError("epochs and batch size must be >= 1")
        if not (0.0 <= self.p_positive <= 1.0):
            raise SpecError(f"p_positive must be in [0, 1], got {self.p_positive}")
        if not self.lr > 0:
            raise SpecError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise SpecError(f"unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})")
        if self.device not in DEVICES:
            raise SpecError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.limit is not None and self.limit < 1:
            raise SpecError(f"limit must be >= 1, got {self.limit}")
        if self.image_size < 8:
            raise SpecError(f"image size must be >= 8, got {self.image_size}")
        if self.workers < 0:
            raise SpecError(f"workers must be >= 0, got {self.workers}")

    def to_dict(self) -> dict:
        """The common fields and the method's options, flat (the run file's hparams)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hp"}
        return {**d, **asdict(self.hp)}

    @classmethod
    def common_fields(cls):
        return [f for f in fields(cls) if f.name != "hp"]
