"""connpack compare: mask distances, effective sparsity and prediction agreement of sparse networks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from connpack.cli.common import MAX_WEIGHTS_DEFAULT, DataDir, JsonFlag, MaxWeights, console, errors, safe
from connpack.files import check_outputs, regular_file, shown
from connpack.errors import SpecError

if TYPE_CHECKING:  # imported in the command body (no torch at start-up)
    from connpack import compare as cmp


def plot(res: cmp.Comparison, path: Path) -> None:
    """Per-layer Jaccard distance, one curve per pair of networks (matplotlib, imported here only)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot needs matplotlib (pip install matplotlib)") from None
    from connpack import atomic

    fig, ax = plt.subplots(figsize=(6, 4))
    x = range(len(res.layers))
    for (i, j), values in res.jaccard.items():
        ax.plot(x, values, marker="o", label=f"{res.names[i]} vs {res.names[j]}")
    ax.set_xticks(list(x), res.layers, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Jaccard distance of masks")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)


@errors
def command(
    models: Annotated[list[Path], typer.Argument(help="two or more .cpk or model.pt files of one architecture")],
    predict: Annotated[bool, typer.Option(help="also run the networks: agreement and ensemble accuracy")] = True,
    dataset: Annotated[
        Optional[str],
        typer.Option(
            help="dataset for the predictions (default: the one the networks record; networks without a record need it)"
        ),
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="use only the first N test examples")] = None,
    plot_path: Annotated[Optional[Path], typer.Option("--plot", help="write per-layer Jaccard curves (PNG)")] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
    max_weights: MaxWeights = MAX_WEIGHTS_DEFAULT,
):
    """Compare the masks (Jaccard, Hamming per layer) and the predictions of sparse networks."""
    from connpack import compare as cmp  # numpy, torch: imported when the command runs, not for --help

    for m in models:
        regular_file(m)
    check_outputs(models, [plot_path])
    names = [str(m) for m in models]
    res = cmp.compare(
        [cmp.load(m, max_weights=max_weights) for m in models],
        names,
        predict=predict,
        dataset=dataset,
        data_dir=data_dir,
        limit=limit,
    )
    if plot_path is not None:
        plot(res, plot_path)
    if as_json:
        console.print_json(json.dumps(res.to_dict()))
        return
    for note in res.notes:
        console.print(shown(note), markup=False, soft_wrap=True)
    if res.dataset:
        console.print(shown(f"predictions on the {res.dataset} test split"), markup=False)
    for i, name in enumerate(names):
        eff = "n/a" if res.effective[i] is None else f"{res.effective[i]:.2%}"
        acc = f"  accuracy {res.accuracy[i]:.2%}" if res.accuracy else ""
        console.print(f"[{i}] {safe(name)}: sparsity {res.sparsity[i]:.2%}, effective {eff}{acc}")
    width = max(len(shown(layer)) for layer in res.layers)
    for (i, j), jac in res.jaccard.items():
        agree = f"  (predictions agree on {res.agreement[(i, j)]:.2%})" if res.agreement else ""
        console.print(f"\n[{i}] vs [{j}]{agree}")
        console.print(f"  {'layer':<{width}}  Jaccard dist.  Hamming dist.")
        for layer, a, b in zip(res.layers, jac, res.hamming[(i, j)]):
            console.print(f"  {shown(layer):<{width}}  {a:13.4f}  {b:13.4f}", markup=False)
    if res.jaccard:
        console.print(
            "Jaccard dist.: 1 - |A∩B|/|A∪B| of the kept sets (0 = the same mask, 1 = nothing kept in "
            "common); Hamming dist.: fraction of positions whose bit differs",
            style="dim",
            markup=False,
        )
    if res.ensemble_accuracy is not None:
        console.print(f"\naveraged-prediction ensemble of {len(names)}: accuracy {res.ensemble_accuracy:.2%}")
    if plot_path is not None:
        console.print(f"wrote {safe(plot_path)}")
