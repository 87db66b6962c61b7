"""Shared by the reproduction scripts: train one configuration, pack it, measure its description length.

Every script writes ``<out>/<name>.json`` (all runs, with their configs) and ``<out>/<name>.png``; the
numbers in docs/results.md come from those JSON files (``python -m benchmarks.reproduce.all``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from connpack.packing import pack
from connpack.reporting import report
from connpack.trainers import TrainConfig, train


def parser(description: str, default_out: str = "docs/results") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny synthetic run (what the test suite executes)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the script's CPU size)")
    p.add_argument("--seeds", type=int, default=1, help="runs per configuration (the paper: 5)")
    p.add_argument("--dataset", default=None, help="override the dataset (e.g. fashion-mnist)")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path(default_out))
    return p


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def run(cfg: TrainConfig, data_dir: Path | None = None) -> dict:
    """Train ``cfg``, pack the result, and return accuracies, connectivity fractions and description length."""
    t0 = time.perf_counter()
    desc, metrics = train(cfg, data_dir=data_dir)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.cpk"
        pack(desc, path)
        rep = report(path).to_dict()
    last = metrics[-1]
    row = {
        "config": cfg.to_dict(),
        "best_test_acc": max(m["test_acc"] for m in metrics),
        "final_test_acc": last["test_acc"],
        "curve": [m["test_acc"] for m in metrics],
        "seconds": seconds,
        "cpk_bytes": rep["file_bytes"],
        "bits_per_weight": rep["bits_per_weight"],
        "ratio_float32": rep["ratio_float32"],
        "bound_bits": rep["bound_bits"],
    }
    for key in ("pruned", "flipped", "sparsity", "density"):
        if key in last:
            row[key] = last[key]
    return row


def seeds(cfg: TrainConfig, n: int, data_dir: Path | None, cache: Path | None = None) -> list[dict]:
    """``n`` runs of ``cfg`` with seeds seed, seed+1, ...; with ``cache``, each finished run is kept there as
    one JSON file named by a hash of its config, so a stopped script resumes where it stopped."""
    return [cached_run(replace(cfg, seed=cfg.seed + s), data_dir, cache) for s in range(n)]


def cached_run(cfg: TrainConfig, data_dir: Path | None, cache: Path | None) -> dict:
    if cache is None:
        return run(cfg, data_dir)
    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    row = run(cfg, data_dir)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    tmp.replace(path)
    return row


def summary(rows: list[dict], key: str = "best_test_acc") -> dict:
    vals = [r[key] for r in rows]
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": statistics.fmean(vals), "std": std, "min": min(vals), "max": max(vals), "n": len(vals)}


def write(out: Path, name: str, payload: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=1))
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
