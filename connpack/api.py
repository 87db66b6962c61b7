"""The Python API (re-exported lazily as ``connpack.pack``, ``connpack.load``, ``connpack.export_onnx``,
``connpack.report``). The CLI commands call these same functions.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from torch import nn

from connpack.description import Description
from connpack.errors import InputFileError, SpecError
from connpack.specs import ModelSpec

PathLike = str | Path


def _shape(in_shape) -> tuple | None:
    return None if in_shape is None else tuple(int(x) for x in in_shape)


def describe(model_or_path, *, arch: str | ModelSpec | None = None, in_shape=None) -> Description:
    """The Description of anything connpack can pack.

    ``model_or_path``: a Description; a .cpk file; a connpack run file (model.pt from ``connpack train``);
    or a sparse PyTorch model — an nn.Module, a state_dict, a checkpoint dict, or a .pt file holding one —
    pruned with torch.nn.utils.prune (``*_orig`` + ``*_mask``) or with zeros in its weights. For those,
    ``arch`` names the architecture (inferred from the tensor names and shapes when None) and ``in_shape``
    the input (C, H, W) (torchvision default (3, 224, 224)).
    """
    from connpack import importers, runfile
    from connpack.pack import unpack

    if isinstance(model_or_path, Description):
        return model_or_path
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if path.suffix == ".cpk":
            return unpack(path)
        obj = importers.load_pt(path)
        if isinstance(obj, dict) and obj.get("connpack") == "run":
            return runfile.load(path)[0]
        return importers.describe(obj, arch=arch, in_shape=_shape(in_shape), source=str(path))
    if isinstance(model_or_path, (nn.Module, dict)):
        return importers.describe(model_or_path, arch=arch, in_shape=_shape(in_shape))
    raise SpecError(f"cannot pack a {type(model_or_path).__name__} (give a path, an nn.Module or a state_dict)")


def pack(model_or_path, out: PathLike, *, arch: str | ModelSpec | None = None, values: str = "float32",
         codec: str = "auto", in_shape=None) -> int:
    """Pack a network into a .cpk file; returns its size in bytes. See ``describe`` for the inputs.

    values: type of the stored kept values (float32 | float16 | bfloat16); masks are entropy coded, dense
    tensors (biases, batch norm) stored as they are.
    """
    from connpack.pack import pack as pack_description

    return pack_description(describe(model_or_path, arch=arch, in_shape=in_shape), out, codec=codec, values=values)


def load_description(path: PathLike) -> Description:
    """The Description in a .cpk file or a connpack run file (model.pt)."""
    from connpack import runfile
    from connpack.pack import unpack

    path = Path(path)
    if path.suffix == ".cpk":
        return unpack(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    return runfile.load(path)[0]


def load(path: PathLike) -> nn.Module:
    """The network of a .cpk or model.pt file as a plain PyTorch module in eval mode (float32 weights;
    regenerated weights are hash-checked)."""
    from connpack.exporters.module import to_module

    return to_module(load_description(path))


def onnx_kinds() -> list[str]:
    """The ONNX exporters present: connpack/exporters/onnx_<kind>.py, each with ``export(desc, path)``."""
    from connpack import exporters

    return sorted(m.name[len("onnx_"):] for m in pkgutil.iter_modules(exporters.__path__) if m.name.startswith("onnx_"))


def export_onnx(path: PathLike, out: PathLike, kind: str = "dense") -> int:
    """Export a .cpk / model.pt network to ONNX; returns the file size in bytes.

    kind "dense" is the materialised network; other kinds are the exporters in connpack/exporters/onnx_<kind>.py.
    """
    kinds = onnx_kinds()
    if kind not in kinds:
        raise SpecError(f"unknown ONNX export kind '{kind}' (choose from {', '.join(kinds)})")
    exporter = importlib.import_module(f"connpack.exporters.onnx_{kind}")
    return exporter.export(load_description(path), out)


def report(path: PathLike):
    """Description length of a .cpk file per tensor and in total: a connpack.report.Report."""
    from connpack.report import report as make_report

    return make_report(path)
