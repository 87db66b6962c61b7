"""Description length of a packed network: per tensor bits against the order-0 bound; totals against
float32, zstd-19 of float32 and torch.save (its size computed, torch is not imported). Reads only the .cpk
artifact."""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import zstandard

from connpack import formats
from connpack.errors import SpecError
from connpack.files import regular_file
from connpack.packing import DEFAULT_MAX_WEIGHTS, from_container, validator
from connpack.torchsave_size import torch_save_size

ZSTD_EXACT_BYTES = 2 << 20  # float32 bytes up to which the zstd-19 column is exact
ZSTD_SAMPLE_PIECES, ZSTD_PIECE = 8, 32 << 10  # beyond: 8 evenly spaced 32 KiB pieces, the size scaled from them


def entropy_bits(n: int, ones: int) -> float:
    """Order-0 bound n*H(p) in bits for n bits with ``ones`` ones."""
    if n == 0 or ones in (0, n):
        return 0.0
    p = ones / n
    return n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@dataclass(frozen=True)
class TensorRow:
    name: str
    kind: str  # mask | flip | ternary-signs | values | dense ...
    shape: tuple
    elements: int
    fraction: float | None  # density of ones (kept / flipped), None for non-bit sections
    codec: str  # the section's codec; "/g" appended when stored in |G| order (cpk.md 7.2)
    bits: int
    bound_bits: float | None
    distortion: float | None = None  # values: estimated relative L2 error of the stored values (see value_distortion)

    @property
    def bits_per_weight(self) -> float:
        return self.bits / max(1, self.elements)

    @property
    def ratio_to_bound(self) -> float | None:
        if self.bound_bits is None:
            return None
        return self.bits / self.bound_bits if self.bound_bits > 0 else (math.inf if self.bits else 1.0)


@dataclass(frozen=True)
class Report:
    path: str
    method: str
    arch: str
    file_bytes: int
    header_bytes: int
    rows: tuple[TensorRow, ...]
    weights: int  # connectivity-bearing weights
    float32_bytes: int  # 4 bytes per element of the materialised state_dict
    torch_save_bytes: int  # torch.save of that state_dict (to a buffer), computed: torchsave_size
    zstd19_bytes: int  # zstd level 19 of the float32 tensors, concatenated
    zstd19_estimated: bool = False  # zstd19_bytes scaled from a sample (over ZSTD_EXACT_BYTES of float32)
    k: float | None = None  # edge-popup: the fraction of weights kept per layer
    in_shape: tuple[int, ...] = ()
    num_classes: int = 0
    data: dict | None = None  # the data contract (cpk.md 7.9) as stored; None: not recorded (unknown)

    @property
    def bound_bits(self) -> float:
        return sum(r.bound_bits or 0.0 for r in self.rows)

    @property
    def payload_bits(self) -> int:
        return sum(r.bits for r in self.rows)

    def ratio(self, other_bytes: int) -> float:
        return other_bytes / self.file_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows"] = [
            dict(asdict(r), bits_per_weight=r.bits_per_weight, ratio_to_bound=r.ratio_to_bound) for r in self.rows
        ]
        d.update(
            bound_bits=self.bound_bits,
            payload_bits=self.payload_bits,
            bits_per_weight=self.file_bytes * 8 / max(1, self.weights),
            file_over_bound_plus_header=self.file_bytes * 8 / max(1.0, self.bound_bits + 8 * self.header_bytes),
            ratio_float32=self.ratio(self.float32_bytes),
            ratio_torch_save=self.ratio(self.torch_save_bytes),
            ratio_zstd19=self.ratio(self.zstd19_bytes),
        )
        return d


def _kind(meta_t: dict, name: str) -> str:
    if name in meta_t:
        return meta_t[name]["k"]
    base, _, suffix = name.rpartition(":")
    if base in meta_t:
        return {"s": "signs", "v": "values", "q": "steps", "a": "prediction"}.get(suffix, suffix)
    return "dense"


def zstd19_size(arrays: list[np.ndarray]) -> tuple[int, bool]:
    """(zstd level 19 size of the arrays' float32 bytes concatenated, estimated?). Exact up to
    ZSTD_EXACT_BYTES; beyond, ZSTD_SAMPLE_PIECES evenly spaced pieces of ZSTD_PIECE bytes are compressed one
    by one and their ratio scaled to the total (level 19 runs at ~1 MB/s: a 34M-weight network would take
    minutes for one column of a table)."""
    blobs = [memoryview(np.ascontiguousarray(a, dtype=np.float32)).cast("B") for a in arrays]
    total = sum(len(b) for b in blobs)
    cctx = zstandard.ZstdCompressor(level=19)
    if total <= ZSTD_EXACT_BYTES:
        return len(cctx.compress(b"".join(blobs))), False
    starts = np.cumsum([0] + [len(b) for b in blobs])
    stride = total // ZSTD_SAMPLE_PIECES
    sample = packed = 0
    for k in range(ZSTD_SAMPLE_PIECES):
        pos, piece = k * stride, bytearray()
        while len(piece) < ZSTD_PIECE and pos < total:  # a piece may span the end of one tensor
            i = int(np.searchsorted(starts, pos, side="right")) - 1
            off = pos - int(starts[i])
            chunk = blobs[i][off : off + ZSTD_PIECE - len(piece)]
            piece += chunk
            pos += len(chunk)
        sample += len(piece)
        packed += len(cctx.compress(bytes(piece)))
    return round(total * packed / sample), True


ROUNDOFF = {"f2": 2.0**-11, "bf16": 2.0**-8}  # unit roundoff of the stored float types


def value_distortion(container, desc, name: str, dtype: str) -> float | None:
    """Estimated relative L2 error of a values tensor's stored kept values against the values packed (which
    the file does not hold): quantised (cpk.md 7.2.1), rms(step / sqrt 12) / rms(decoded value), the error of
    rounding to the nearest step; float16/bfloat16, u / sqrt 3 for unit roundoff u (uniform relative
    rounding); float32, 0 (what was packed)."""
    if dtype == "f4":
        return 0.0
    if dtype in ROUNDOFF:
        return ROUNDOFF[dtype] / math.sqrt(3)
    code = desc.tensors.get(name)
    steps = container.arrays.get(f"{name}:q")
    if code is None or steps is None or not code.values.size:
        return None
    from connpack.values import channels

    s = steps.astype(np.float64)
    s = np.full(code.values.size, s[0]) if s.size == 1 else s[channels(code.bits)]
    rms = float(np.sqrt(np.mean(np.square(code.values, dtype=np.float64))))
    return float(np.sqrt(np.mean(s * s) / 12)) / rms if rms > 0 else None


def report(path: str | Path, *, max_weights: int = DEFAULT_MAX_WEIGHTS) -> Report:
    """The description length of a .cpk file. Every section is decoded once, after its header and metadata
    passed validation (packing.validate_meta, within ``max_weights``); the weights are hash-checked."""
    path = Path(path)
    regular_file(path)
    raw = path.read_bytes()
    container, sections = formats.decode_inspect(raw, max_elements=max_weights, validate=validator(max_weights))
    desc = from_container(container)
    meta_t = container.meta.get("t", {})
    rows = []
    for s in sections:
        n = math.prod(s.shape)
        is_bits = s.ones is not None
        rows.append(
            TensorRow(
                name=s.name,
                kind=_kind(meta_t, s.name),
                shape=tuple(s.shape),
                elements=n,
                fraction=(s.ones / n if n else 0.0) if is_bits else None,
                bits=8 * s.coded_bytes,
                codec=s.codec + ("/g" if meta_t.get(s.name, {}).get("o") == "g" else ""),  # stored in |G| order
                bound_bits=s.bound_bits if is_bits else None,
                distortion=(
                    value_distortion(container, desc, s.name[:-2], s.dtype)
                    if s.name.endswith(":v") and meta_t.get(s.name[:-2], {}).get("k") == "values"
                    else None
                ),
            )
        )
    sd = {k: np.asarray(v, order="C") for k, v in desc.state_dict().items()}  # every weight hash-checked
    z, estimated = zstd19_size(list(sd.values()))
    return Report(
        path=str(path),
        method=desc.spec.method,
        arch=desc.spec.model.arch,
        file_bytes=len(raw),
        k=desc.spec.hparams.get("k"),  # a .cpk keeps only the hparams a method needs (specs.KEPT_HPARAMS)
        header_bytes=formats.header_size(raw),
        rows=tuple(rows),
        in_shape=tuple(desc.spec.model.in_shape),
        num_classes=desc.spec.model.num_classes,
        data=None if desc.data is None else desc.data.to_meta(),
        weights=sum(c.size for c in desc.tensors.values()),
        float32_bytes=sum(4 * v.size for v in sd.values()),
        torch_save_bytes=torch_save_size(sd),
        zstd19_bytes=z,
        zstd19_estimated=estimated,
    )


def plot(rep: Report, path: str | Path) -> int:
    """Bits per weight of every section beside its order-0 bound n*H(p)/n, one group of bars per section.

    matplotlib is optional (``pip install 'connpack[plot]'``); the PNG is written atomically.
    Returns the file size in bytes.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot needs matplotlib: pip install 'connpack[plot]'") from None
    from connpack import atomic

    rows = rep.rows
    x = np.arange(len(rows))
    coded = [r.bits_per_weight for r in rows]
    bound = [(r.bound_bits or 0.0) / max(1, r.elements) if r.bound_bits is not None else np.nan for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows) + 2), 4.2), dpi=120)
    ax.bar(x - 0.2, coded, 0.4, label="coded (bits / weight)", color="#3b6ea8")
    ax.bar(x + 0.2, bound, 0.4, label="order-0 bound n·H(p) / n", color="#e39b3a")
    ax.set_xticks(x, [f"{r.name}\n{r.codec}" for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("bits per weight")
    if any(c > 4 for c in coded):  # float sections (16-32 bits) next to sub-bit masks
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(
        f"{Path(rep.path).name}: {rep.arch}, {rep.method} — {rep.file_bytes:,} bytes, "
        f"{rep.file_bytes * 8 / max(1, rep.weights):.3f} bits/weight",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic.write_bytes(path, buf.getvalue())
