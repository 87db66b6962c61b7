"""The Python API (``connpack.pack``, ``connpack.load``, ``connpack.export_onnx``, ``connpack.report`` call
these). The CLI commands call these same functions.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from connpack.description import Description
from connpack.errors import SpecError
from connpack.files import regular_file
from connpack.specs import ModelSpec

PathLike = str | Path
MAX_IN_DIM = 1 << 16
MAX_IN_ELEMENTS = 1 << 26  # 64M values per input image (ImageNet: 150,528)


def check_in_shape(in_shape) -> tuple | None:
    """``in_shape`` as a (C, H, W) tuple of positive ints of a bounded size (SpecError otherwise)."""
    if in_shape is None:
        return None
    shape = tuple(int(x) for x in in_shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise SpecError(f"in_shape must be (channels, height, width), got {shape}")
    if max(shape) > MAX_IN_DIM or shape[0] * shape[1] * shape[2] > MAX_IN_ELEMENTS:
        raise SpecError(
            f"in_shape {shape} is too large (each dimension at most {MAX_IN_DIM:,}, C*H*W at most {MAX_IN_ELEMENTS:,})"
        )
    return shape


def describe(model_or_path, *, arch: str | ModelSpec | None = None, in_shape=None) -> Description:
    """The Description of anything connpack can pack.

    ``model_or_path``: a Description; a .cpk file; a connpack run file (model.pt from ``connpack train``);
    or a sparse PyTorch model — an nn.Module, a state_dict, a checkpoint dict, or a .pt file holding one —
    pruned with torch.nn.utils.prune (``*_orig`` + ``*_mask``) or with zeros in its weights. For those,
    ``arch`` names the architecture (inferred from the tensor names and shapes when None) and ``in_shape``
    the input (C, H, W) (torchvision default (3, 224, 224)).
    """
    from connpack import importers, runfile
    from connpack.packing import unpack

    if isinstance(model_or_path, Description):
        return model_or_path
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if path.suffix == ".cpk":
            return unpack(path)
        obj = importers.load_pt(path)
        if isinstance(obj, dict) and obj.get("connpack") == "run":
            return runfile.load(path)[0]
        return importers.describe(obj, arch=arch, in_shape=check_in_shape(in_shape), source=str(path))
    if isinstance(model_or_path, (nn.Module, dict)):
        return importers.describe(model_or_path, arch=arch, in_shape=check_in_shape(in_shape))
    raise SpecError(f"cannot pack a {type(model_or_path).__name__} (give a path, an nn.Module or a state_dict)")


def with_data(desc: Description, dataset: str | None = None, mean=None, std=None) -> Description:
    """``desc`` with its data contract (connpack.contract): the recorded one, or — for a network that has none
    (an imported PyTorch model) — the one of ``dataset`` (connpack.data's registry), ``mean``/``std`` replacing
    the registry's values or giving them for a dataset connpack does not know. A recorded contract is never
    overridden: a different ``dataset``/``mean``/``std`` is refused (SpecError)."""
    if dataset is None and mean is None and std is None:
        return desc
    if desc.data is not None:
        rec = desc.data
        given = {
            "dataset": (dataset, rec.dataset),
            "mean": (None if mean is None else tuple(map(float, mean)), rec.mean),
            "std": (None if std is None else tuple(map(float, std)), rec.std),
        }
        for key, (want, have) in given.items():
            if want is not None and want != have:
                raise SpecError(
                    f"the network records {key} {have}; --{key} {want} contradicts it (the record "
                    "comes from training and is kept)"
                )
        return desc
    if dataset is None:
        raise SpecError("--mean/--std need --dataset NAME (the dataset they belong to)")
    from connpack import data

    record = data.contract(dataset, mean, std)
    record.fits(desc.spec.model.in_shape, desc.spec.model.num_classes)
    return Description(desc.spec, desc.tensors, desc.dense, desc.weight_hashes, record)


def pack(
    model_or_path,
    out: PathLike,
    *,
    arch: str | ModelSpec | None = None,
    values: str = "float32",
    codec: str = "auto",
    in_shape=None,
    dataset: str | None = None,
    mean=None,
    std=None,
    max_error: float | None = None,
    error_on: str = "outputs",
    max_accuracy_drop: float | None = None,
    data_dir=None,
) -> int:
    """Pack a network into a .cpk file; returns its size in bytes. See ``describe`` for the inputs.

    values: type of the stored kept values: float32 | float16 | bfloat16 (lossless casts), or q2 .. q16
    (quantised with per-output-channel steps of that many bits); masks are entropy coded, dense tensors
    (biases, batch norm) stored as they are. Or a target instead of a type (connpack.targets):
    ``max_error`` E: the coarsest steps keeping the relative L2 error of the outputs on a fixed probe batch
    (``error_on="outputs"``) or of the weights (``"weights"``) <= E; ``max_accuracy_drop`` D: test accuracy on
    the dataset the network records (connpack run files; ``dataset`` for others) within D points of the
    float32 network (``data_dir``: where the dataset is). ``pack_values`` also returns what was chosen.
    The data contract (dataset, input normalisation, class names) is copied from a connpack run file; for
    other models ``dataset``/``mean``/``std`` give it (see ``with_data``), else the file records none.
    """
    return pack_values(
        model_or_path,
        out,
        arch=arch,
        values=values,
        codec=codec,
        in_shape=in_shape,
        dataset=dataset,
        mean=mean,
        std=std,
        max_error=max_error,
        error_on=error_on,
        max_accuracy_drop=max_accuracy_drop,
        data_dir=data_dir,
    )[0]


def pack_values(
    model_or_path,
    out: PathLike,
    *,
    arch=None,
    values: str = "float32",
    codec: str = "auto",
    in_shape=None,
    dataset=None,
    mean=None,
    std=None,
    max_error=None,
    error_on: str = "outputs",
    max_accuracy_drop=None,
    data_dir=None,
    progress=None,
):
    """``pack``, returning (file size, connpack.targets.Choice or None): the steps chosen for a target and
    the error or accuracy they reach (None for a plain value type). ``progress``: per tensor coded
    (connpack.packing.pack)."""
    from connpack import targets
    from connpack import values as vq
    from connpack.packing import pack as pack_description

    kind, bits = vq.check_options(values, max_error, error_on, max_accuracy_drop)
    desc = with_data(describe(model_or_path, arch=arch, in_shape=in_shape), dataset, mean, std)
    choice = None
    if max_accuracy_drop is not None:
        choice = targets.max_accuracy_drop(desc, float(max_accuracy_drop), data_dir=data_dir)
    elif max_error is not None:
        choice = targets.max_error(desc, float(max_error), error_on)
    stored = choice.plan if choice else (vq.plan_bits(vq.kept_tensors(desc), bits) if kind == "q" else values)
    return pack_description(desc, out, codec=codec, values=stored, progress=progress), choice


def load_description(path: PathLike, *, max_weights: int | None = None) -> Description:
    """The Description in a .cpk file or a connpack run file (model.pt). A .cpk whose network has more than
    ``max_weights`` elements (default: connpack.packing.DEFAULT_MAX_WEIGHTS, 2**31) is refused before it
    is decoded."""
    from connpack import runfile
    from connpack.packing import DEFAULT_MAX_WEIGHTS, unpack

    path = Path(path)
    if path.suffix == ".cpk":
        return unpack(path, max_weights=max_weights or DEFAULT_MAX_WEIGHTS)
    regular_file(path)
    return runfile.load(path)[0]


def load(path: PathLike) -> nn.Module:
    """The network of a .cpk or model.pt file as a plain PyTorch module in eval mode (float32 weights;
    regenerated weights are hash-checked)."""
    from connpack.exporters.module import to_module

    return to_module(load_description(path))


def export_onnx(path: PathLike, out: PathLike, kind: str = "dense", input: str | None = None) -> int:
    """Export a .cpk / model.pt network to ONNX (written atomically); returns the bytes written (past 2 GiB of
    tensors, the graph and its external data ``<out>.data``: see ``write_onnx``).

    kind: dense (the materialised network), compact (dead units removed), sparse-init (COO initialisers),
    sparse (compact + COO), self-decoding (weights regenerated and bits decoded in the graph) — see connpack.exporters.
    input: "raw" (the graph normalises its input as the data contract records; default when there is one)
    or "normalised" (default without a record).
    """
    from connpack import exporters

    exporters.check_kind(kind)  # before the file is decoded
    return write_onnx(load_description(path), out, kind, input)


def write_onnx(desc: Description, out: PathLike, kind: str = "dense", input: str | None = None, *, group=None) -> int:
    """``export_onnx`` for a loaded Description (connpack unpack calls it); returns the bytes written.

    A graph whose tensors pass protobuf's 2 GiB limit is written with ONNX external data: the tensors in
    ``<out>.data`` beside ``out`` (connpack.exporters.onnx_file). ``group``: a connpack.atomic.group the
    file(s) join (renamed into place with the caller's other outputs); by default their own.
    """
    from contextlib import nullcontext

    from connpack import atomic, exporters
    from connpack.exporters import onnx_file

    proto = exporters.to_onnx(desc, kind, input)
    with nullcontext(group) if group is not None else atomic.group() as g:
        return onnx_file.write(proto, out, g)


def report(path: PathLike, *, max_weights: int | None = None):
    """Description length of a .cpk file per tensor and in total: a connpack.reporting.Report (``max_weights``:
    as in ``load_description``)."""
    from connpack.packing import DEFAULT_MAX_WEIGHTS
    from connpack.reporting import report as make_report

    return make_report(path, max_weights=max_weights or DEFAULT_MAX_WEIGHTS)
