"""Paganini & Forde (the reinitialization paper), Table 2 left: test accuracy of the conv LeNet (lenet5) on
MNIST at each pruning iteration for several IMP techniques (rewinding, 20% of the remaining connections or
units per iteration), plus the averaged-prediction ensemble of all techniques (Table 2 right, "all").

    python -m benchmarks.reproduce.imp_table2                          # CPU size: 5 iterations x 2 epochs
    python -m benchmarks.reproduce.imp_table2 --iterations 20 --epochs 30 --seeds 5   # the paper's size
"""

from __future__ import annotations

from benchmarks.reproduce import common
from connpack import compare
from connpack.packing import pack
from connpack.reporting import report
from connpack.trainers import make_config, imp

TECHNIQUES = ("l2-s", "l1-s", "l1-us", "hybrid", "random-us", "random-s", "linf-s", "fc-only")
PAPER = {  # Table 2 left, iterations 1-5 and "all" (averaged over 5 seeds)
    "l2-s": [97.4, 97.2, 96.5, 95.8, 95.0],
    "l1-s": [97.5, 97.0, 96.6, 95.6, 95.1],
    "l1-us": [97.8, 97.7, 97.8, 97.9, 97.6],
    "hybrid": [97.8, 97.6, 97.5, 97.6, 97.5],
    "random-us": [97.4, 97.0, 96.1, 95.6, 93.8],
    "random-s": [97.3, 96.9, 96.4, 95.1, 94.0],
    "linf-s": [97.1, 96.9, 96.2, 95.4, 94.1],
    "fc-only": [97.9, 97.8, 97.7, 97.8, 97.8],
    "all": [98.2, 98.2, 98.1, 97.9, 97.7],
}


def main(argv=None) -> dict:
    p = common.parser(__doc__)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--techniques", default=",".join(TECHNIQUES))
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    dataset = args.dataset or ("synthetic-mnist" if args.smoke else "mnist")
    techniques = ("l1-us", "l1-s", "hybrid") if args.smoke else tuple(args.techniques.split(","))
    iterations = 1 if args.smoke else args.iterations
    epochs = args.epochs or (1 if args.smoke else 2)
    results, finals = {}, []
    for tech in techniques:
        cfg = make_config(
            method="imp",
            arch="lenet5",
            dataset=dataset,
            technique=tech,
            iterations=iterations,
            epochs=epochs,
            reinit="rewind",
            device=args.device,
            limit=400 if args.smoke else args.limit,
        )
        res = imp.train(cfg, data_dir=args.data_dir)
        finals.append(res.trained)
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            pack(res.ticket if res.ticket is not None else res.trained, Path(tmp) / "t.cpk")
            rep = report(Path(tmp) / "t.cpk").to_dict()
        kept = [float(sum(m[k].sum() for k in m) / sum(m[k].size for k in m)) for m in res.masks]
        results[tech] = {
            "accuracy": res.accuracy,
            "kept_fraction": kept,
            "paper": PAPER.get(tech),
            "ticket_bytes": rep["file_bytes"],
            "ticket_bits_per_weight": rep["bits_per_weight"],
            "ticket_ratio_float32": rep["ratio_float32"],
        }
    cmp = compare.compare(finals, list(techniques), dataset=dataset, data_dir=args.data_dir)
    payload = {
        "dataset": dataset,
        "epochs": epochs,
        "iterations": iterations,
        "seeds": 1,
        "results": results,
        "ensemble_all_final": cmp.ensemble_accuracy,
        "paper_all": PAPER["all"],
        "effective_sparsity": dict(zip(techniques, cmp.effective)),
    }
    path = common.write(args.out, "imp_table2" + ("_smoke" if args.smoke else ""), payload)
    plot(results, path.with_suffix(".png"))
    return results


def plot(results: dict, path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for tech, r in results.items():
        ax.plot(range(len(r["accuracy"])), [100 * a for a in r["accuracy"]], marker="o", label=tech)
    ax.set(
        xlabel="pruning iteration (20% of remaining per step)",
        ylabel="test accuracy (%)",
        title="IMP with rewinding, conv LeNet on MNIST",
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
