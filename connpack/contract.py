"""The data contract of a network: which dataset it was trained on and how its input was prepared.

    raw input x in [lo, hi] (images: pixels / 255, in [0, 1])  ->  network input (x - mean[c]) / std[c]

recorded by ``connpack train`` in model.pt, copied by ``connpack pack`` into the .cpk header (``m.data``,
formats/cpk.md 7.9) and by the ONNX exporters into the graph (a Sub/Div at the input + ``metadata_props``).
The input shape and the class count are the architecture's (``spec.model.in_shape``, ``num_classes``);
the record adds the dataset name, the raw value range, the per-channel mean/std and the class names.

Commands never guess a dataset: ``dataset_for`` gives the recorded one, or the one asked for (with a note
when they differ), or refuses. Nothing here imports torch; the dataset registry is connpack.data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from connpack.errors import FormatError, SpecError, UnknownFieldError

FIELDS = ("dataset", "mean", "std", "range", "classes")  # cpk.md 7.9; "range" and "classes" are optional
MAX_NAME_BYTES = 256


def _printable(s) -> bool:
    return isinstance(s, str) and 0 < len(s.encode("utf-8")) <= MAX_NAME_BYTES and s.isprintable()


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class DataContract:
    """What the network expects as input, and what its outputs mean."""

    dataset: str  # registry name (connpack.data), or a user's name for imports
    mean: tuple[float, ...]  # per input channel, subtracted from the raw input
    std: tuple[float, ...]  # per input channel (> 0), divides after the subtraction
    range: tuple[float, float] | None = None  # raw input value range [lo, hi]; None: not recorded
    classes: tuple[str, ...] | None = None  # output names in logit order; None: not recorded

    def __post_init__(self):
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.range is not None:
            object.__setattr__(self, "range", tuple(float(v) for v in self.range))
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(self.classes))
        problem = self._problem()
        if problem:
            raise SpecError(f"data record: {problem}")

    def _problem(self) -> str | None:
        if not _printable(self.dataset):
            return f"dataset name {self.dataset!r:.60} is not 1-{MAX_NAME_BYTES} bytes of printable text"
        if not self.mean or len(self.mean) != len(self.std):
            return "mean and std need one number per input channel"
        if not all(math.isfinite(v) for v in self.mean):
            return "mean values must be finite numbers"
        if not all(math.isfinite(v) and v > 0 for v in self.std):
            return "std values must be finite numbers > 0"
        if self.range is not None and not (
            len(self.range) == 2 and all(math.isfinite(v) for v in self.range) and self.range[0] < self.range[1]
        ):
            return f"range {self.range} is not two finite numbers lo < hi"
        if self.classes is not None and not all(_printable(c) for c in self.classes):
            return f"class names must be 1-{MAX_NAME_BYTES} bytes of printable text"
        return None

    def fits(self, in_shape, num_classes: int) -> None:
        """Refuse (SpecError) a record that does not fit the architecture's input channels / class count."""
        if len(self.mean) != int(in_shape[0]):
            raise SpecError(
                f"data record has {len(self.mean)} mean/std value(s); the network takes "
                f"{int(in_shape[0])} input channel(s)"
            )
        if self.classes is not None and len(self.classes) != int(num_classes):
            raise SpecError(f"data record names {len(self.classes)} classes; the network has {num_classes} outputs")

    def to_meta(self) -> dict:
        """The JSON object stored as ``m.data`` (cpk.md 7.9) and in model.pt."""
        out: dict = {"dataset": self.dataset, "mean": list(self.mean), "std": list(self.std)}
        if self.range is not None:
            out["range"] = list(self.range)
        if self.classes is not None:
            out["classes"] = list(self.classes)
        return out

    def describe(self) -> str:
        """One line for people: 'fashion-mnist; raw input in [0, 1], normalised by mean (0.286) std (0.353)'."""
        nums = lambda vs: ", ".join(f"{v:g}" for v in vs)  # noqa: E731
        rng = f" in [{nums(self.range)}]" if self.range else ""
        return f"{self.dataset}; raw input{rng}, normalised by mean ({nums(self.mean)}) std ({nums(self.std)})"


def check_fields(obj) -> None:
    """cpk.md 7.3 step 1 for ``m.data``: an object with no field outside FIELDS (UnknownFieldError)."""
    if not isinstance(obj, dict):
        raise FormatError("meta.data must be a JSON object")
    extra = sorted(set(obj) - set(FIELDS))
    if extra:
        raise UnknownFieldError(f"unknown field(s) {', '.join(map(repr, extra))} in meta.data")


def from_meta(obj, in_shape, num_classes: int) -> DataContract:
    """The record in ``m.data``, every rule of cpk.md 7.9 checked (FormatError / UnknownFieldError)."""
    check_fields(obj)
    for key in ("dataset", "mean", "std"):
        if key not in obj:
            raise FormatError(f"meta.data lacks the field {key!r}")
    for key in ("mean", "std", "range"):
        if key in obj and not (isinstance(obj[key], list) and all(_number(v) for v in obj[key])):
            raise FormatError(f"meta.data.{key} must be a list of finite numbers")
    if "classes" in obj and not (isinstance(obj["classes"], list) and all(isinstance(c, str) for c in obj["classes"])):
        raise FormatError("meta.data.classes must be a list of strings")
    if not isinstance(obj["dataset"], str):
        raise FormatError("meta.data.dataset must be a string")
    try:
        c = DataContract(
            obj["dataset"],
            tuple(obj["mean"]),
            tuple(obj["std"]),
            tuple(obj["range"]) if "range" in obj else None,
            tuple(obj["classes"]) if "classes" in obj else None,
        )
        c.fits(in_shape, num_classes)
    except SpecError as e:
        raise FormatError(f"meta.data: {str(e).removeprefix('data record: ')}") from None
    return c


def contract_of(meta: dict) -> DataContract | None:
    """The data record of a decoded .cpk metadata object ``m`` (None when the file has none).

    For callers that hold the header but not a Description, e.g. ``formats.read(path).meta``.
    """
    if not isinstance(meta, dict) or "data" not in meta:
        return None
    from connpack.specs import ModelSpec

    try:
        model = ModelSpec.from_dict(meta.get("spec", {}).get("model", {}))
    except (SpecError, AttributeError, TypeError) as e:
        raise FormatError(f"meta.spec.model: {e}") from None
    return from_meta(meta["data"], model.in_shape, model.num_classes)


def dataset_for(
    contract: DataContract | dict | None, override: str | None, what: str = "the network"
) -> tuple[str, str | None]:
    """(dataset to evaluate on, a note to print or None). Never a guess.

    ``contract``: a DataContract, a .cpk metadata object ``m`` (read with ``contract_of``), or None.

    The recorded dataset by default; ``override`` (``--dataset``) when given, with a note naming both when it
    differs from the record; no record and no override: SpecError (exit 2).
    """
    if isinstance(contract, dict):
        contract = contract_of(contract)
    if override:
        if contract is None:
            return override, f"{what} records no dataset; evaluating on {override} as asked"
        if override != contract.dataset:
            return override, f"{what} was trained on {contract.dataset}; evaluating on {override} as asked"
        return override, None
    if contract is None:
        raise SpecError(
            f"{what} records no dataset (written before connpack recorded it, or imported without "
            "--dataset): give --dataset NAME"
        )
    return contract.dataset, None
