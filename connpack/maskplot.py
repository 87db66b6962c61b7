"""Pictures of the masks: what researchers look at first (Ivan & Florian Fig. 6, Frankle & Carbin Fig. 5).

``masks_figure``: per layer, the density of every output unit (fraction of its incoming weights kept, or
flipped for sign-flip networks), sorted, and -- when the input is an image and the first layer is fully
connected -- the first layer's density per input pixel as an image (which pixels lost all connections).
``iterations_figure``: for iterative pruning (IMP), each layer's density and the Jaccard distance of its
mask to the previous iteration's. matplotlib is optional (``pip install 'connpack[plot]'``); PNGs are
written atomically. Reads only Descriptions (artifacts), never a trainer.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from connpack.description import Description
from connpack.errors import SpecError

BIT_KINDS = ("mask", "ternary", "values", "flip")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot needs matplotlib: pip install 'connpack[plot]'") from None
    return plt


def _save(fig, plt, path: str | Path) -> int:
    from connpack import atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic.write_bytes(path, buf.getvalue())


def unit_density(bits: np.ndarray) -> np.ndarray:
    """Fraction of ones per output unit (axis 0: Linear rows, Conv2d output channels)."""
    return bits.reshape(bits.shape[0], -1).mean(axis=1)


def pixel_density(bits: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray | None:
    """The first layer's fraction of ones per input pixel (averaged over channels) as an H x W image, or None
    when the layer is not fully connected over an image input."""
    if len(in_shape) != 3 or bits.ndim != 2 or bits.shape[1] != int(np.prod(in_shape)):
        return None
    return bits.mean(axis=0).reshape(in_shape).mean(axis=0)


def _layers(desc: Description) -> list[tuple[str, str, np.ndarray]]:
    return [
        (name, code.kind, np.asarray(code.bits, dtype=bool))
        for name, code in desc.tensors.items()
        if code.kind in BIT_KINDS and code.bits is not None
    ]


def masks_figure(desc: Description, path: str | Path, title: str = "") -> int:
    """Per-unit density of every layer (+ the first layer's per-pixel density image); returns the PNG's size."""
    layers = _layers(desc)
    if not layers:
        raise SpecError("no mask or flip bits in this network: nothing to draw")
    what = "flipped" if all(kind == "flip" for _, kind, _ in layers) else "kept"
    image = pixel_density(layers[0][2], tuple(desc.spec.model.in_shape))
    plt = _pyplot()
    cols = 2 if image is not None else 1
    fig, axes = plt.subplots(1, cols, figsize=(5.2 * cols, 3.8), dpi=120, squeeze=False)
    ax = axes[0, 0]
    top = 0.0
    for name, _, bits in layers:
        d = np.sort(unit_density(bits))[::-1]
        top = max(top, float(d[0]))
        ax.plot(np.linspace(0, 1, len(d)), d, label=f"{name} ({bits.shape[0]} units, {bits.mean():.1%})")
    ax.set_xlabel("output units, sorted (fraction of the layer)")
    ax.set_ylabel(f"fraction of incoming weights {what}")
    ax.set_ylim(0, min(1.0, 1.15 * top) or 1.0)
    ax.set_title(f"density per output unit ({what})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if image is not None:
        ax = axes[0, 1]
        shown = ax.imshow(image, cmap="viridis")  # the range of the data: the structure shows
        dead = int((image == 0).sum())
        ax.set_title(f"{layers[0][0]}: fraction {what} per input pixel ({dead} pixels with none)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)


def jaccard_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - |a ∩ b| / |a ∪ b| over the kept sets (0 = the same mask)."""
    union = int(np.logical_or(a, b).sum())
    return 0.0 if union == 0 else 1.0 - int(np.logical_and(a, b).sum()) / union


def iterations_figure(masks: list[dict[str, np.ndarray]], path: str | Path, title: str = "") -> int:
    """Density of each layer's keep-mask and its Jaccard distance to the previous iteration, per iteration."""
    if len(masks) < 2:
        raise SpecError("an iterations figure needs at least two masks")
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.4, 3.8), dpi=120)
    its = np.arange(len(masks))
    for name in masks[0]:
        left.plot(its, [m[name].mean() for m in masks], marker="o", ms=3, label=name)
        right.plot(
            its[1:],
            [jaccard_distance(a[name], b[name]) for a, b in zip(masks, masks[1:])],
            marker="o",
            ms=3,
            label=name,
        )
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    left.set_yscale("log")
    left.yaxis.set_major_formatter(PercentFormatter(1.0))
    left.yaxis.set_minor_formatter(PercentFormatter(1.0, decimals=0))
    left.set_xlabel("iteration")
    left.set_ylabel("density (fraction kept, log)")
    right.set_xlabel("iteration")
    right.set_ylabel("Jaccard dist. to previous iteration")
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, plt, path)
