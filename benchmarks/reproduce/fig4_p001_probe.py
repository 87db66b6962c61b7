"""Why free pruning at p = 0.01 (99% of the signed-constant weights negative) fails here: every candidate cause
the issue names, measured one at a time against the default setting.

    python -m benchmarks.reproduce.fig4_p001_probe [--epochs 3]      # resumable: finished candidates are kept

Candidates (LeNet-300-100, MNIST, free pruning, Adam, batch 25):
- input preprocessing: mean/std-standardised pixels (connpack's default) vs raw [0, 1] pixels;
- the scale of the weights: a ReLU network without biases is positively homogeneous, so multiplying every
  weight by a is multiplying the input by a^L (Ivan & Florian Eq. 6) -- tested as input x 10 and x 0.1;
- the initial scores t ~ U(0, s]: s = 0.1 (the paper) vs 0.01 and 1;
- the learning rate: 1e-3 (Table A.2) vs 1e-4 and 1e-2.
Besides accuracy, each row records how many hidden units are alive (positive on at least one of 2,000 test
images, and the fraction of (image, unit) pairs that are positive) at initialisation and after training: the
mechanism behind the failure.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace

import torch

from benchmarks.reproduce import common
from connpack import data, models, rng
from connpack.layers import conn_layers
from connpack.trainers import make_config, network_spec, train

BASE = dict(method="prune", variant="free", arch="lenet300", init="signed_constant", p_positive=0.01)
CANDIDATES = {  # name -> (input transform, score high bound, lr)
    "default (standardised input, t~U(0,0.1], lr 1e-3)": ("standardised", 0.1, 1e-3),
    "raw [0,1] input": ("raw", 0.1, 1e-3),
    "weights x10 (input x10)": ("x10", 0.1, 1e-3),
    "weights x0.1 (input x0.1)": ("x0.1", 0.1, 1e-3),
    "scores t~U(0,0.01]": ("standardised", 0.01, 1e-3),
    "scores t~U(0,1]": ("standardised", 1.0, 1e-3),
    "lr 1e-4": ("standardised", 0.1, 1e-4),
    "lr 1e-2": ("standardised", 0.1, 1e-2),
    "p = 0.5 reference (standardised)": ("standardised", 0.1, 1e-3),
    # not a candidate but the mechanism check: if dead ReLUs are the cause, letting a little gradient through
    # them (leaky ReLU, slope 0.01, in place of every ReLU) must make p = 0.01 trainable
    "mechanism check: leaky ReLU (slope 0.01)": ("leaky", 0.1, 1e-3),
}


@contextlib.contextmanager
def patched(inputs: str, score_high: float):
    """Swap the dataset's preprocessing and the scores' range for one run (restored afterwards)."""
    meta = data.DATASETS["mnist"]
    old_load, old_scores = data.load, rng.scores_uniform
    factor = {"x10": 10.0, "x0.1": 0.1}.get(inputs, 1.0)

    def load(name, split, data_dir=None, **kw):
        x, y = old_load(name, split, data_dir, **kw)
        if inputs == "raw":
            x = x * meta.std[0] + meta.mean[0]
        return x * factor, y

    def scores(seed, index, shape, low, high):
        return old_scores(seed, index, shape, low, score_high * high / 0.1)

    old_relu = torch.nn.ReLU
    data.load, rng.scores_uniform = load, scores
    if inputs == "leaky":
        torch.nn.ReLU = lambda *a, **k: torch.nn.LeakyReLU(0.01)  # models build nn.ReLU() at construction
    try:
        yield load
    finally:
        data.load, rng.scores_uniform, torch.nn.ReLU = old_load, old_scores, old_relu


def alive(model, x) -> list[dict]:
    h, out = x.flatten(1), []
    with torch.no_grad():
        for name, layer in list(conn_layers(model))[:-1]:
            z = layer(h)
            out.append(
                {
                    "layer": name,
                    "units_alive": float((z > 0).any(0).float().mean()),
                    "active_fraction": float((z > 0).float().mean()),
                }
            )
            h = torch.relu(z)  # alive = positive pre-activation, whatever the activation
    return out


def main(argv=None) -> dict:
    p = common.parser(__doc__)
    args = p.parse_args(argv)
    epochs = args.epochs or (1 if args.smoke else 3)
    path = args.out / ("fig4_p001_probe" + ("_smoke" if args.smoke else "") + ".json")
    done = json.loads(path.read_text())["results"] if path.exists() and not args.smoke else {}
    names = list(CANDIDATES)[:2] if args.smoke else list(CANDIDATES)
    for name in names:
        if name in done:
            continue
        inputs, score_high, lr = CANDIDATES[name]
        ppos = 0.5 if name.startswith("p = 0.5") else 0.01
        cfg = make_config(
            **{**BASE, "p_positive": ppos},
            dataset="synthetic-mnist" if args.smoke else "mnist",
            epochs=epochs,
            lr=lr,
            device=args.device,
            limit=500 if args.smoke else None,
        )
        if args.smoke:
            cfg = replace(cfg, dataset="synthetic-mnist")
        with patched(inputs, score_high) as load:
            x_probe = load(cfg.dataset, "test", args.data_dir)[0][:2000]
            spec = network_spec(cfg)
            model0 = models.build(spec)
            t0 = time.perf_counter()
            desc, metrics = train(cfg, data_dir=args.data_dir)
        model1 = _module(desc)
        done[name] = {
            "inputs": inputs,
            "score_high": score_high,
            "lr": lr,
            "p_positive": ppos,
            "best_test_acc": max(m["test_acc"] for m in metrics),
            "curve": [m["test_acc"] for m in metrics],
            "pruned": metrics[-1].get("pruned"),
            "pruned_per_layer": _pruned(desc),
            "alive_init": alive(model0, x_probe),
            "alive_trained": alive(model1, x_probe),
            "seconds": time.perf_counter() - t0,
        }
        common.write(args.out, path.stem, {"dataset": cfg.dataset, "epochs": epochs, "results": done})
        plot(done, path.with_suffix(".png"))
    return done


def plot(results: dict, path) -> None:
    plt = common.pyplot()
    names = list(results)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.5), sharey=True)
    ys = range(len(names))
    a1.barh(ys, [100 * r["best_test_acc"] for r in results.values()], color="tab:orange")
    a1.set(
        yticks=list(ys),
        xlabel="test accuracy, best epoch (%)",
        xlim=(0, 100),
        title="free pruning, LeNet-300-100, p = 0.01",
    )
    a1.set_yticklabels(names, fontsize=7)
    a1.invert_yaxis()
    a2.barh(
        [y - 0.2 for y in ys],
        [100 * r["alive_init"][1]["active_fraction"] for r in results.values()],
        0.4,
        label="at initialisation",
    )
    a2.barh(
        [y + 0.2 for y in ys],
        [100 * r["alive_trained"][1]["active_fraction"] for r in results.values()],
        0.4,
        label="after training",
    )
    a2.set(xscale="symlog", xlabel="fc2: (image, unit) pairs with a positive pre-activation (%)")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _module(desc):
    from connpack.exporters.module import to_module

    return to_module(desc)


def _pruned(desc) -> dict:
    return {k: float(1 - t.bits.mean()) for k, t in desc.tensors.items() if t.kind == "mask"}


if __name__ == "__main__":
    main()
