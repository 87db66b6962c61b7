"""Ramanujan et al. (edge-popup), Fig. 3: accuracy of Conv2/4/6 against k, the fraction of weights KEPT,
for signed Kaiming constant weights (and Kaiming normal), SGD 0.1 cosine, batch 128.

The paper's figure is on CIFAR-10, which cannot be obtained offline here: with ``--dataset cifar10
--data-dir DIR`` (torchvision's layout) it runs the paper's setting; without it the default CPU size runs the
same sweep on MNIST (a stand-in that shows the shape of the curve, not the paper's numbers).

    python -m benchmarks.reproduce.edgepopup_fig3                          # MNIST stand-in, CPU size
    python -m benchmarks.reproduce.edgepopup_fig3 --dataset cifar10 --data-dir ~/data --epochs 100   # GPU
"""

from __future__ import annotations

from benchmarks.reproduce import common
from connpack.trainers import make_config

K_VALUES = (0.1, 0.3, 0.5, 0.7, 0.9)
ARCHS = ("conv2", "conv4", "conv6")


def main(argv=None) -> dict:
    p = common.parser(__doc__)
    p.add_argument("--archs", default=",".join(ARCHS))
    p.add_argument("--init", default="signed_constant")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--width", type=float, default=1.0)
    args = p.parse_args(argv)
    dataset = args.dataset or ("synthetic-cifar" if args.smoke else "mnist")
    epochs = args.epochs or (1 if args.smoke else 3)
    ks = (0.1, 0.5) if args.smoke else K_VALUES
    archs = ("conv2",) if args.smoke else tuple(args.archs.split(","))
    results = {}
    for arch in archs:
        results[arch] = {}
        for k in ks:
            cfg = make_config(
                method="edge-popup",
                arch=arch,
                dataset=dataset,
                init=args.init,
                k=k,
                epochs=epochs,
                width=0.25 if args.smoke else args.width,
                device=args.device,
                limit=300 if args.smoke else args.limit,
            )
            rows = common.seeds(
                cfg, args.seeds, args.data_dir, None if args.smoke else args.out / "runs" / "edgepopup_fig3"
            )
            results[arch][str(k)] = {"runs": rows, "summary": common.summary(rows)}
    path = common.write(
        args.out,
        "edgepopup_fig3" + ("_smoke" if args.smoke else ""),
        {"dataset": dataset, "epochs": epochs, "init": args.init, "results": results},
    )
    plot(results, dataset, path.with_suffix(".png"))
    return results


def plot(results: dict, dataset: str, path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for arch, by_k in results.items():
        ks = [float(k) for k in by_k]
        ax.plot(ks, [100 * r["summary"]["mean"] for r in by_k.values()], marker="o", label=arch)
    ax.set(
        xlabel="k (fraction of weights kept)",
        ylabel="test accuracy (%)",
        title=f"edge-popup, signed constant weights ({dataset})",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
