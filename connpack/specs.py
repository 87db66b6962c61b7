"""Frozen value types that describe a network: what it is, how its weights are generated, how it was trained.

Everything here is plain data with a canonical JSON form (``to_json``/``from_json``), checked on
construction, so a spec that exists is a valid spec. Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from connpack.errors import SpecError

INIT_DISTRIBUTIONS = ("signed_constant", "kaiming_normal", "xavier_normal", "kaiming_uniform", "zeros", "ones")
RNG_ALGORITHMS = ("philox4x32-10",)
# Per method: the hparams a .cpk keeps (compact_dict); the report shows them. edge-popup: k, the fraction kept.
KEPT_HPARAMS = {"edge-popup": ("k",)}


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _from_dict(cls, data: dict):
    if not isinstance(data, dict):
        raise SpecError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            v = data[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)


@dataclass(frozen=True)
class InitSpec:
    """How one weight tensor is drawn from the RNG.

    dist: signed_constant (±gain/sqrt(fan_in), sign + with probability p_positive), kaiming_normal,
    xavier_normal, kaiming_uniform (bound gain*sqrt(3/fan_in)), zeros, ones.
    scale: extra factor on the std/magnitude; edge-popup's "scaled" variants use sqrt(1/k).
    gain: sqrt(2) for ReLU (He et al.).
    """

    dist: str = "signed_constant"
    p_positive: float = 0.5
    scale: float = 1.0
    gain: float = math.sqrt(2.0)

    def __post_init__(self):
        if self.dist not in INIT_DISTRIBUTIONS:
            raise SpecError(f"unknown init '{self.dist}' (choose from {', '.join(INIT_DISTRIBUTIONS)})")
        if not (0.0 <= float(self.p_positive) <= 1.0):
            raise SpecError(f"p_positive must be in [0, 1], got {self.p_positive}")
        if not (float(self.scale) > 0 and math.isfinite(self.scale)):
            raise SpecError(f"init scale must be a positive finite number, got {self.scale}")
        if not (float(self.gain) > 0 and math.isfinite(self.gain)):
            raise SpecError(f"init gain must be a positive finite number, got {self.gain}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "InitSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class RngSpec:
    """The weight generator: a counter-based stream keyed by (seed, tensor index). See connpack.rng."""

    seed: int = 0
    algorithm: str = "philox4x32-10"

    def __post_init__(self):
        if self.algorithm not in RNG_ALGORITHMS:
            raise SpecError(f"unknown RNG algorithm '{self.algorithm}'")
        if not isinstance(self.seed, int) or not (0 <= self.seed < 2**64):
            raise SpecError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RngSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class ModelSpec:
    """An architecture from the registry plus the knobs that change its tensors' shapes."""

    arch: str = "lenet300"
    in_shape: tuple = (1, 28, 28)
    num_classes: int = 10
    width: float = 1.0
    bias: bool = False
    batchnorm: str = "none"  # none | frozen (no affine, edge-popup) | affine (ASNI/VGG)

    def __post_init__(self):
        object.__setattr__(self, "in_shape", tuple(int(x) for x in self.in_shape))
        if len(self.in_shape) != 3 or min(self.in_shape) <= 0:
            raise SpecError(f"in_shape must be (channels, height, width), got {self.in_shape}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise SpecError(f"num_classes must be an integer >= 2, got {self.num_classes}")
        if not (float(self.width) > 0 and math.isfinite(self.width)):
            raise SpecError(f"width multiplier must be positive, got {self.width}")
        if self.batchnorm not in ("none", "frozen", "affine"):
            raise SpecError(f"batchnorm must be none|frozen|affine, got {self.batchnorm!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["in_shape"] = list(self.in_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSpec":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class NetworkSpec:
    """What pack/unpack need to rebuild a network: model + RNG + default init + per-tensor overrides.

    inits maps a tensor name to an InitSpec when it differs from ``init``.
    method is informative (which trainer produced it); ``hparams`` records its settings.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    rng: RngSpec = field(default_factory=RngSpec)
    init: InitSpec = field(default_factory=InitSpec)
    method: str = "flip"
    hparams: dict = field(default_factory=dict)
    inits: dict = field(default_factory=dict)

    def init_for(self, name: str) -> InitSpec:
        return self.inits.get(name, self.init)

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "rng": self.rng.to_dict(),
            "init": self.init.to_dict(),
            "method": self.method,
            "hparams": dict(self.hparams),
            "inits": {k: v.to_dict() for k, v in sorted(self.inits.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> "NetworkSpec":
        if not isinstance(data, dict):
            raise SpecError("network spec: expected an object")
        unknown = sorted(set(data) - {"model", "rng", "init", "method", "hparams", "inits"})
        if unknown:
            raise SpecError(f"NetworkSpec: unknown field(s) {', '.join(unknown)}")
        return cls(
            model=ModelSpec.from_dict(data.get("model", {})),
            rng=RngSpec.from_dict(data.get("rng", {})),
            init=InitSpec.from_dict(data.get("init", {})),
            method=str(data.get("method", "flip")),
            hparams=dict(data.get("hparams", {})),
            inits={k: InitSpec.from_dict(v) for k, v in data.get("inits", {}).items()},
        )

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    def compact_dict(self) -> dict:
        """What a rebuild needs, with every field at its default left out (the .cpk header counts in bytes)."""

        def strip(obj, default) -> dict:
            d, ref = obj.to_dict(), default.to_dict()
            return {k: v for k, v in d.items() if v != ref[k]}

        out = {
            "model": strip(self.model, ModelSpec()),
            "rng": strip(self.rng, RngSpec()),
            "init": strip(self.init, InitSpec()),
            "method": self.method,
        }
        if self.inits:
            out["inits"] = {k: strip(v, InitSpec()) for k, v in sorted(self.inits.items())}
        kept = {k: float(self.hparams[k]) for k in KEPT_HPARAMS.get(self.method, ()) if k in self.hparams}
        if kept:
            out["hparams"] = kept
        return {k: v for k, v in out.items() if v != {}}

    @classmethod
    def from_json(cls, text: str) -> "NetworkSpec":
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as e:
            raise SpecError(f"network spec is not valid JSON: {e}") from None
        return cls.from_dict(data)
