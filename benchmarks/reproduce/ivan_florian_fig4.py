"""Ivan & Florian, Fig. 4 left: free pruning of LeNet-300-100 on MNIST with signed He constant weights whose
sign is + with probability p; accuracy and pruned fraction against p.

    python -m benchmarks.reproduce.ivan_florian_fig4 [--epochs 10] [--seeds 1]
"""

from __future__ import annotations

from benchmarks.reproduce import common
from connpack.trainers import make_config

P_VALUES = (0.01, 0.1, 0.3, 0.5, 0.7, 1.0)
# Read off the paper's text (section 2.4): performance kept for 0.3 <= p <= 0.7, -1% at p <= 0.1,
# -10% at p <= 0.01, p = 1: ~95% with ~65% of the weights pruned.
PAPER_TEXT = {1.0: {"acc": 95.0, "pruned": 65.0}}


def main(argv=None) -> dict:
    args = common.parser(__doc__).parse_args(argv)
    dataset = args.dataset or ("synthetic-mnist" if args.smoke else "mnist")
    epochs = args.epochs or (1 if args.smoke else 10)
    ps = (0.1, 1.0) if args.smoke else P_VALUES
    results = {}
    for p in ps:
        cfg = make_config(
            method="prune",
            variant="free",
            arch="lenet300",
            dataset=dataset,
            init="signed_constant",
            p_positive=p,
            epochs=epochs,
            device=args.device,
            limit=500 if args.smoke else None,
        )
        rows = common.seeds(
            cfg, args.seeds, args.data_dir, None if args.smoke else args.out / "runs" / "ivan_florian_fig4"
        )
        results[str(p)] = {"runs": rows, "summary": common.summary(rows), "pruned": common.summary(rows, "pruned")}
        # written after every p, so a long run that is stopped keeps what it finished
        path = common.write(
            args.out,
            "ivan_florian_fig4" + ("_smoke" if args.smoke else ""),
            {"dataset": dataset, "epochs": epochs, "seeds": args.seeds, "results": results, "paper_text": PAPER_TEXT},
        )
    plot(results, path.with_suffix(".png"))
    return results


def plot(results: dict, path) -> None:
    plt = common.pyplot()
    ps = [float(p) for p in results]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(5, 5), sharex=True)
    a1.errorbar(
        ps,
        [100 * r["summary"]["mean"] for r in results.values()],
        yerr=[100 * r["summary"].get("std", 0.0) for r in results.values()],
        marker="o",
        color="tab:orange",
        capsize=3,
    )
    a1.set(ylabel="test accuracy (%)", title="LeNet-300-100, free pruning, sign imbalance")
    a2.errorbar(
        ps,
        [100 * r["pruned"]["mean"] for r in results.values()],
        yerr=[100 * r["pruned"].get("std", 0.0) for r in results.values()],
        marker="o",
        color="tab:orange",
        capsize=3,
    )
    a1.text(
        0.02,
        0.04,
        f"mean ± std over {next(iter(results.values()))['summary']['n']} seed(s)",
        transform=a1.transAxes,
        fontsize=8,
    )
    a2.set(xscale="log", xlabel="p (probability of a positive weight)", ylabel="pruned (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
