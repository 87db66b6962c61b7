"""Iterative magnitude pruning of LeNet-300-100 on MNIST, the lottery-ticket setting (Frankle & Carbin; the
reinitialization paper's protocol): 20% of the remaining weights per iteration (L1, unstructured, per layer),
rewinding vs finetuning vs random re-initialisation, with the description length of every ticket.

    python -m benchmarks.reproduce.imp_lenet300 [--iterations 15] [--epochs 1] [--reinits rewind,finetune,random]

Resumable: each re-init is one IMP run checkpointed per epoch under runs/imp_lenet300/ (re-running the command
continues where it stopped), and each finished re-init is kept in docs/results/imp_lenet300.json.
A ticket is the sparse network's initialisation: mask + seed (rewind: the seed it was found with; random:
seed + 1). Its .cpk size is measured for every iteration's mask; for finetuning, which has no ticket, the
same figure is the cost of its mask alone.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.reproduce import common
from connpack import models
from connpack.packing import pack
from connpack.reporting import report
from connpack.trainers import TrainConfig, imp, make_config, masked
from connpack.trainers.asni import network_spec

REINITS = ("rewind", "finetune", "random")


def ticket_cost(cfg: TrainConfig, masks: dict, reinit: str) -> dict:
    """Bytes and bits per weight of the .cpk holding this mask over the generated initialisation."""
    spec = network_spec(cfg)
    source = imp.random_spec(spec) if reinit == "random" else spec
    model = masked.attach(models.build(source))
    desc = imp.ticket(
        masked.weights(model), masks, spec, masked.dense_state(model), "random" if reinit == "random" else "rewind"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.cpk"
        pack(desc, path)
        rep = report(path).to_dict()
    return {"cpk_bytes": rep["file_bytes"], "bits_per_weight": rep["bits_per_weight"]}


def main(argv=None) -> dict:
    p = common.parser(__doc__)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--reinits", default=",".join(REINITS))
    p.add_argument("--work", type=Path, default=Path("runs/imp_lenet300"), help="checkpoints (resumable)")
    args = p.parse_args(argv)
    dataset = args.dataset or ("synthetic-mnist" if args.smoke else "mnist")
    iterations = 2 if args.smoke else args.iterations
    epochs = args.epochs or 1
    name = "imp_lenet300" + ("_smoke" if args.smoke else "")
    path = args.out / f"{name}.json"
    done = json.loads(path.read_text())["results"] if path.exists() and not args.smoke else {}
    for reinit in args.reinits.split(","):
        if reinit in done and len(done[reinit]["accuracy"]) == iterations + 1:
            continue
        cfg = make_config(
            method="imp",
            arch="lenet300",
            dataset=dataset,
            technique="l1-us",
            fraction=0.2,
            iterations=iterations,
            scope="local",
            reinit=reinit,
            epochs=epochs,
            device=args.device,
            limit=400 if args.smoke else None,
        )
        args.work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        res = imp.train(cfg, data_dir=args.data_dir, checkpoint=args.work / f"{reinit}.ck", resume=True)
        kept = [float(sum(m[k].sum() for k in m) / sum(m[k].size for k in m)) for m in res.masks]
        costs = [ticket_cost(cfg, m, reinit) for m in res.masks]
        done[reinit] = {
            "accuracy": res.accuracy,
            "kept_fraction": kept,
            "config": cfg.to_dict(),
            "ticket_bytes": [c["cpk_bytes"] for c in costs],
            "ticket_bits_per_weight": [c["bits_per_weight"] for c in costs],
            "seconds": time.perf_counter() - t0,
        }
        common.write(args.out, name, {"dataset": dataset, "epochs": epochs, "iterations": iterations, "results": done})
        plot(done, path.with_suffix(".png"))
    return done


def plot(results: dict, path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    ax2 = ax.twinx()
    for (reinit, r), color in zip(results.items(), ("tab:blue", "tab:orange", "tab:green")):
        kept = [100 * k for k in r["kept_fraction"]]
        ax.plot(kept, [100 * a for a in r["accuracy"]], marker="o", color=color, label=f"{reinit}: accuracy")
        ax2.plot(
            kept,
            r["ticket_bits_per_weight"],
            ls="--",
            marker=".",
            color=color,
            label=f"{reinit}: ticket bits/weight" if reinit != "finetune" else "finetune: mask bits/weight",
        )
    ax.set(
        xscale="log",
        xlabel="weights remaining (%, log)",
        ylabel="test accuracy (%)",
        title="IMP on LeNet-300-100 (MNIST): accuracy and description length",
    )
    ax.invert_xaxis()
    ax2.set(ylabel="packed bits per weight (dashed; float32 = 32)", yscale="log")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(
        lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
