"""Ivan & Florian, Table 1, LeNet-300-100 column: baseline, free/minimal pruning, free/minimal flipping,
signed He constant weights, Adam, batch 25, Table A.2 learning rates.

    python -m benchmarks.reproduce.ivan_florian_table1 [--epochs 10] [--seeds 1]   # CPU size (~15-25 min)
    python -m benchmarks.reproduce.ivan_florian_table1 --epochs 100 --seeds 5     # paper size (GPU)
"""

from __future__ import annotations

from benchmarks.reproduce import common
from connpack.trainers import make_config

PAPER = {
    "baseline": 97.96,
    "free pruning": 98.05,
    "minimal pruning": 96.83,
    "free flipping": 98.14,
    "minimal flipping": 97.22,
}
ROWS = {
    "free flipping": ("flip", "free"),
    "minimal flipping": ("flip", "minimal"),
    "free pruning": ("prune", "free"),
    "minimal pruning": ("prune", "minimal"),
    "baseline": ("baseline", "free"),
}


def main(argv=None) -> dict:
    args = common.parser(__doc__).parse_args(argv)
    dataset = args.dataset or ("synthetic-mnist" if args.smoke else "mnist")
    epochs = args.epochs or (1 if args.smoke else 10)
    results = {}
    for label, (method, variant) in ROWS.items():
        cfg = make_config(
            method=method,
            variant=variant,
            arch="lenet300",
            dataset=dataset,
            init="signed_constant",
            epochs=epochs,
            device=args.device,
            limit=500 if args.smoke else None,
        )
        rows = common.seeds(
            cfg, args.seeds, args.data_dir, None if args.smoke else args.out / "runs" / "ivan_florian_table1"
        )
        results[label] = {"paper": PAPER[label], "runs": rows, "summary": common.summary(rows)}
        # written after every row, so a long run that is stopped keeps what it finished
        path = common.write(
            args.out,
            "ivan_florian_table1" + ("_smoke" if args.smoke else ""),
            {"dataset": dataset, "epochs": epochs, "seeds": args.seeds, "results": results},
        )
    plot(results, path.with_suffix(".png"))
    return results


def plot(results: dict, path) -> None:
    plt = common.pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, r in results.items():
        curves = [[100 * a for a in run["curve"]] for run in r["runs"]]
        epochs = range(1, len(curves[0]) + 1)
        mean = [sum(c[e] for c in curves) / len(curves) for e in range(len(curves[0]))]
        (line,) = ax.plot(epochs, mean, marker=".", label=f"{label} (n={len(curves)})")
        ax.fill_between(
            epochs,
            [min(c[e] for c in curves) for e in range(len(curves[0]))],
            [max(c[e] for c in curves) for e in range(len(curves[0]))],
            color=line.get_color(),
            alpha=0.2,
        )
    ax.set(
        xlabel="epoch",
        ylabel="test accuracy (%)",
        title="LeNet-300-100 on MNIST, signed He constant\n(mean of seeds; band: min-max, as the paper)",
    )
    ax.legend(fontsize=8)
    labels = list(results)
    ax2.bar(labels, [r["runs"][0]["bits_per_weight"] for r in results.values()])
    ax2.set(ylabel="packed bits / weight (log)", yscale="log", title="description length (.cpk; float32 = 32)")
    ax2.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
