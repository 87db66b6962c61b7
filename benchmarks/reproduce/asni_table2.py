"""Damadi et al. (ASNI), Table 2, rows FC-MNIST and Conv2/4/6-MNIST: accuracies of D (dense), A (ASNI),
C (ASNI mask + centroid re-init, retrained), S (ASNI mask + original init, retrained), the sparsity, and the
packed description lengths of A and of the amenable initialisation (mask + signs + 2 floats per layer).

    python -m benchmarks.reproduce.asni_table2 --rows fc                 # FC at the paper's 50 epochs (~20 min CPU)
    python -m benchmarks.reproduce.asni_table2 --rows conv2,conv4,conv6 --limit 6000 --epochs 5   # CPU-sized conv rows
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.reproduce import common
from connpack.packing import pack
from connpack.reporting import report
from connpack.trainers import make_config, asni

PAPER = {  # Table 2, MNIST rows: sparsity %, D, A, C, S
    "fc": {"arch": "lenet300", "sparsity": 96.87, "D": 96.88, "A": 96.72, "C": 96.93, "S": 96.75},
    "conv2": {"arch": "conv2", "sparsity": 98.18, "D": 98.09, "A": 98.12, "C": 98.14, "S": 98.03},
    "conv4": {"arch": "conv4", "sparsity": 97.94, "D": 98.33, "A": 98.46, "C": 98.52, "S": 98.27},
    "conv6": {"arch": "conv6", "sparsity": 97.15, "D": 98.25, "A": 98.54, "C": 98.53, "S": 98.36},
}


def main(argv=None) -> dict:
    p = common.parser(__doc__)
    p.add_argument("--rows", default="fc", help="comma-separated: fc, conv2, conv4, conv6")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (CPU-sized conv rows)")
    args = p.parse_args(argv)
    dataset = args.dataset or ("synthetic-mnist" if args.smoke else "mnist")
    name = "asni_table2" + ("_smoke" if args.smoke else "")
    previous = args.out / f"{name}.json"
    # rows already in the JSON are kept (a run of other rows adds to them); a row with the same config is skipped
    results = json.loads(previous.read_text())["results"] if previous.exists() and not args.smoke else {}
    for row in args.rows.split(","):
        paper = PAPER[row]
        cfg = make_config(
            method="asni",
            arch=paper["arch"],
            dataset=dataset,
            device=args.device,
            epochs=2 if args.smoke else args.epochs,
            width=0.25 if args.smoke else 1.0,
            limit=400 if args.smoke else args.limit,
        )
        if row in results and results[row]["config"] == cfg.to_dict():
            continue
        t0 = time.perf_counter()
        res = asni.train(cfg, data_dir=args.data_dir)
        with tempfile.TemporaryDirectory() as tmp:
            sizes = {}
            for tag, desc, values in (
                ("A_f32", res.trained, "float32"),
                ("A_f16", res.trained, "float16"),
                ("init", res.amenable, "float32"),
                ("C_f32", res.retrained, "float32"),
            ):
                path = Path(tmp) / f"{tag}.cpk"
                pack(desc, path, values=values)
                rep = report(path).to_dict()
                sizes[tag] = {
                    "bytes": rep["file_bytes"],
                    "bits_per_weight": rep["bits_per_weight"],
                    "ratio_float32": rep["ratio_float32"],
                }
        results[row] = {
            "paper": paper,
            "config": cfg.to_dict(),
            "accuracy": res.accuracy,
            "sparsity": res.sparsity,
            "nonzeros": res.nonzeros,
            "sizes": sizes,
            "seconds": time.perf_counter() - t0,
        }
        path = common.write(args.out, name, {"dataset": dataset, "results": results})
    path = common.write(args.out, name, {"dataset": dataset, "results": results})
    plot(results, path.with_suffix(".png"))
    return results


def plot(results: dict, path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    variants = ("D", "A", "C", "S")
    width = 0.8 / max(1, 2 * len(results))
    for i, (row, r) in enumerate(results.items()):
        xs = [j + (2 * i) * width for j in range(4)]
        ax.bar(xs, [100 * r["accuracy"].get(v, 0) for v in variants], width, label=f"{row} (ours)")
        ax.bar([x + width for x in xs], [r["paper"][v] for v in variants], width, label=f"{row} (paper)", alpha=0.5)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(4)], variants)
    lo = min(min(100 * a for a in r["accuracy"].values()) for r in results.values())
    ax.set(ylim=(max(0, lo - 2), 100), ylabel="test accuracy (%)", title="ASNI Table 2 (MNIST rows)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
