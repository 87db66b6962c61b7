"""Step time of each connectivity trainer divided by dense training of the same network, in the same run.

One step = forward, loss (+ minimal regulariser), backward, optimizer step: connpack.trainers.loop.Loop.step,
the code the trainers run. Ivan & Florian's methods are compared with dense training under Adam, edge-popup
with dense training under SGD (momentum, weight decay), each with its paper's batch size unless --batch is
given. Methods are timed round-robin (so load on a shared machine hits all alike); medians are printed, of
wall time and, on CPU, of this thread's CPU time (with --threads 1 all the work runs on the calling thread,
so CPU time is the step time an unloaded core would see -- the honest figure on a shared machine).
Goal: <= 1.3x.

    python benchmarks/bench_step_time.py [--arch lenet300 conv6] [--device cpu] [--steps 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from connpack import data, models
from connpack.trainers import make_config, methods, network_spec
from connpack.trainers.loop import Loop, build_optimizer

METHODS = [
    ("baseline", "free", "adam"),
    ("prune", "free", "adam"),
    ("prune", "minimal", "adam"),
    ("flip", "free", "adam"),
    ("flip", "minimal", "adam"),
    ("baseline", "free", "sgd"),
    ("edge-popup", "free", "sgd"),
]
DATASET = {"lenet300": "synthetic-mnist"}


def make(arch: str, method: str, variant: str, optimizer: str, batch: int, device: torch.device):
    hp = {} if method == "edge-popup" else {"variant": variant}
    cfg = make_config(
        method=method,
        **hp,
        arch=arch,
        optimizer=optimizer,
        batch_size=batch,
        dataset=DATASET.get(arch, "synthetic-cifar"),
        device=device.type,
    )
    spec = network_spec(cfg)
    model = models.build(spec)
    m = methods.get(method)
    m.configure(model, spec, cfg)
    model.to(device).train()
    opt = build_optimizer(
        optimizer, [p for p in model.parameters() if p.requires_grad], cfg.lr, weight_decay=cfg.weight_decay
    )
    loop = Loop(model, opt, (None, None), (None, None), 1, batch, 0, device, regularizer=m.regularizer(cfg))
    x, y = data.load(cfg.dataset, "train", limit=batch)
    return loop, x.to(device), y.to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["lenet300", "conv6"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=None, help="one batch size for all (default: 25 I&F, 128 edge-popup)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"device {device}  threads {torch.get_num_threads()}  torch {torch.__version__}  (median of {args.steps} steps)"
    )
    print(
        f"{'arch':9s} {'method':20s} {'opt':5s} {'batch':>5s} {'wall ms':>9s} {'÷ dense':>8s} {'cpu ms':>8s} {'÷ dense':>8s}"
    )
    for arch in args.arch:
        runs = {}
        for method, variant, opt in METHODS:
            batch = args.batch or (25 if opt == "adam" else 128)
            runs[(method, variant, opt)] = make(arch, method, variant, opt, batch, device)
        times = {key: [] for key in runs}
        cpu = {key: [] for key in runs}
        for i in range(args.steps + 3):
            for key, (loop, x, y) in runs.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0, c0 = time.perf_counter(), time.thread_time()
                loop.step(x, y, len(y))
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= 3:  # warm-up
                    times[key].append(time.perf_counter() - t0)
                    cpu[key].append(time.thread_time() - c0)
        med = {key: 1e3 * statistics.median(v) for key, v in times.items()}
        med_cpu = {key: 1e3 * statistics.median(v) for key, v in cpu.items()}
        for (method, variant, opt), ms in med.items():
            dense, dense_cpu = med[("baseline", "free", opt)], med_cpu[("baseline", "free", opt)]
            c = med_cpu[(method, variant, opt)]
            name = method if method in ("baseline", "edge-popup") else f"{method} {variant}"
            print(
                f"{arch:9s} {name:20s} {opt:5s} {len(runs[(method, variant, opt)][2]):5d} {ms:9.2f} {ms / dense:8.2f} "
                f"{c:8.2f} {c / dense_cpu:8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
