"""Training hyper-parameters as one frozen dataclass, with the help text beside each field."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from connpack.errors import SpecError

MAX_WIDTH = 64.0
"""Largest width multiplier (conv8 at 64x already has ~10^10 weights)."""

# Ivan & Florian, Table A.2 (Adam, batch 25). conv8 is not in the paper: it takes conv6's rates.
PAPER_LR = {
    "lenet300": {"baseline": 1e-3, "prune": 1e-3, "flip": 1e-3},
    "conv2": {"baseline": 2e-4, "prune": 3e-3, "flip": 5e-4},
    "conv4": {"baseline": 3e-4, "prune": 3e-3, "flip": 5e-4},
    "conv6": {"baseline": 3e-4, "prune": 3e-3, "flip": 5e-4},
    "conv8": {"baseline": 3e-4, "prune": 3e-3, "flip": 5e-4},
}


# Names users type for the weight distributions (CLI --init) -> connpack.rng / InitSpec names.
INIT_ALIASES = {"he": "kaiming_normal", "he_normal": "kaiming_normal", "glorot": "xavier_normal",
                "glorot_normal": "xavier_normal", "he_constant": "signed_constant",
                "signed_he_constant": "signed_constant", "signed_kaiming_constant": "signed_constant"}
INITS = ("signed_constant", "kaiming_normal", "xavier_normal", "kaiming_uniform")


def parse_init(name: str, method: str = "edge-popup") -> tuple[str, bool]:
    """'kaiming_normal_scaled' -> ('kaiming_normal', True). Scaled (x sqrt(1/k), edge-popup section 4.5)
    needs the fraction k kept, so it is edge-popup's only."""
    scaled = name.endswith("_scaled")
    base = name[: -len("_scaled")] if scaled else name
    base = INIT_ALIASES.get(base, base)
    if base not in INITS:
        raise SpecError(f"unknown init '{name}' (choose from {', '.join(INITS)}, aliases "
                        f"{', '.join(INIT_ALIASES)}, each optionally with _scaled)")
    if scaled and method != "edge-popup":
        raise SpecError(f"init '{name}': the _scaled variants (std x sqrt(1/k)) are for --method edge-popup")
    return base, scaled


def method_defaults(method: str, optimizer: str | None = None) -> dict:
    """Defaults that depend on the method: Ivan & Florian Table A.2, or edge-popup section 4.1."""
    if method == "edge-popup":
        optimizer = optimizer or "sgd"
        return {"batch_size": 128, "optimizer": optimizer, "weight_decay": 1e-4,
                "schedule": "cosine" if optimizer == "sgd" else "none"}
    optimizer = optimizer or "adam"
    return {"batch_size": 25, "optimizer": optimizer, "weight_decay": 0.0,
            "schedule": "cosine" if optimizer == "sgd" else "none"}


@dataclass(frozen=True)
class TrainConfig:
    method: str = field(default="flip", metadata={"help": "baseline | prune | flip | edge-popup | asni | imp"})
    variant: str = field(default="free", metadata={"help": "free | minimal (Ivan & Florian Eq. 4 regulariser)"})
    arch: str = field(default="lenet300", metadata={"help": "architecture name from the registry"})
    dataset: str = field(default="mnist", metadata={"help": "mnist | fashion-mnist | cifar10 | synthetic-*"})
    init: str | None = field(default=None, metadata={"help": "default: signed_constant (asni/imp: kaiming_normal); signed_constant (he_constant) | kaiming_normal (he) | "
                      "xavier_normal (glorot) | kaiming_uniform; append _scaled for edge-popup's std x sqrt(1/k)"})
    p_positive: float = field(default=0.5, metadata={"help": "signed_constant: probability of a + sign"})
    seed: int = field(default=0, metadata={"help": "seeds weights, scores and data order"})
    epochs: int | None = field(default=None, metadata={"help": "training epochs (default 10; asni: Table 1; imp: 30)"})
    batch_size: int | None = field(default=None, metadata={"help": "default: 25 (Table A.2); edge-popup 128"})
    lr: float | None = field(default=None, metadata={"help": "learning rate (default: the paper's)"})
    optimizer: str | None = field(default=None, metadata={"help": "adam | sgd (default: adam; edge-popup sgd, momentum 0.9)"})
    width: float = field(default=1.0, metadata={"help": "width multiplier of hidden layers"})
    k: float = field(default=0.5, metadata={"help": "edge-popup: fraction of weights KEPT per layer, in (0, 1]"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N training examples"})
    weight_decay: float | None = field(default=None, metadata={"help": "default: 0; edge-popup 1e-4 (on the scores)"})
    schedule: str | None = field(default=None, metadata={"help": "none | cosine (default: cosine for sgd, none for adam)"})
    # ASNI (Damadi et al., Algorithm 1); None = Tables 1 and 2 for the architecture and dataset (trainers.asni)
    alpha: float | None = field(default=None, metadata={"help": "asni: final sparsity scale alpha, percent in (0, 100)"})
    beta: float = field(default=0.5, metadata={"help": "asni: sigmoid centre as a fraction of the epochs, in [0, 1]"})
    gamma: float | None = field(default=None, metadata={"help": "asni: sigmoid temperature in epochs, > 0"})
    delta: float = field(default=0.06, metadata={"help": "asni: cosine scale delta > 0 (with --schedule cosine)"})
    # Iterative magnitude pruning (Paganini & Forde, section 3)
    technique: str = field(default="l1-us", metadata={"help": "imp: l1-us l1-s l2-s linf-s random-us random-s hybrid fc-only"})
    fraction: float = field(default=0.2, metadata={"help": "imp: fraction of the remaining connections/units pruned per step"})
    iterations: int = field(default=20, metadata={"help": "imp: pruning iterations (each followed by a full training)"})
    scope: str = field(default="local", metadata={"help": "imp: local (per layer) | global (pooled per rule)"})
    reinit: str = field(default="rewind", metadata={"help": "imp: rewind | finetune | sigma-sign | sign | random (fresh draw, seed + 1)"})

    def __post_init__(self):
        for f in fields(self):  # nan / inf reach no optimizer
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"{f.name.replace('_', '-')} must be a finite number, got {value}")
        if not 0 < self.width <= MAX_WIDTH:
            raise SpecError(f"width multiplier must be in (0, {MAX_WIDTH:g}], got {self.width:g}")
        if self.method in ("asni", "imp"):  # the pruning papers' defaults; they check their own fields
            from connpack.trainers import asni, imp

            (asni if self.method == "asni" else imp).apply_defaults(self)
        for name, value in {"init": "signed_constant", "epochs": 10, **method_defaults(self.method, self.optimizer)}.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        parse_init(self.init, self.method)
        if self.weight_decay < 0 or self.schedule not in ("none", "cosine"):
            raise SpecError(f"weight decay must be >= 0 and schedule none|cosine, got {self.weight_decay}, {self.schedule!r}")
        if self.method not in ("baseline", "prune", "flip", "edge-popup", "asni", "imp"):
            raise SpecError(f"unknown method '{self.method}' (choose from baseline, prune, flip, edge-popup, asni, imp)")
        if self.variant not in ("free", "minimal"):
            raise SpecError(f"unknown variant '{self.variant}' (choose from free, minimal)")
        if self.epochs < 1 or self.batch_size < 1:
            raise SpecError("epochs and batch size must be >= 1")
        if not (0.0 < self.k <= 1.0):
            raise SpecError(f"k (fraction of weights kept) must be in (0, 1], got {self.k}")
        if not (0.0 <= self.p_positive <= 1.0):
            raise SpecError(f"p_positive must be in [0, 1], got {self.p_positive}")
        if self.lr is not None and not self.lr > 0:
            raise SpecError(f"learning rate must be > 0, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise SpecError(f"unknown optimizer '{self.optimizer}' (choose from adam, sgd)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SpecError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.method == "edge-popup" and self.optimizer == "sgd":
            return 0.1  # edge-popup section 4.1 (CIFAR-10)
        key = "prune" if self.method == "edge-popup" else self.method
        return PAPER_LR.get(self.arch, PAPER_LR["conv6"])[key]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}
