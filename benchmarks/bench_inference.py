"""Inference figures for every ONNX export of one network: size, load time, memory, batch-1 latency and
batch throughput, each vs onnxruntime dense, from one run of connpack.bench.

    .venv/bin/python benchmarks/bench_inference.py MODEL.cpk|MODEL.pt [--threads 1] [--runs 300] [--batch 64]

Prints one line per variant plus the compaction record; the machine (CPU count, threads) is in the header.
"""

from __future__ import annotations

import argparse
import platform

from connpack.bench import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    res = bench(args.model, threads=args.threads, runs=args.runs, batch=args.batch)
    print(
        f"{res.source}  machine: {platform.processor() or platform.machine()}, {res.cpu_count} CPUs, "
        f"{res.threads} thread(s); {res.runs} runs at batch 1, {max(10, res.runs // 5)} at batch {res.batch}"
    )
    print(
        f"{'variant':14s} {'bytes':>10s} {'×size':>7s} {'load s':>7s} {'RSS MB':>7s} {'p50 ms':>8s} {'p90 ms':>8s} "
        f"{'img/s':>10s} {'×b1':>6s} {'×b' + str(res.batch):>6s} {'max|Δ|':>8s}"
    )
    ratios = res.ratios()
    for r in res.rows:
        q = ratios[r.variant]
        size = f"{r.file_bytes:,}" if r.file_bytes else "-"
        sr = f"{q['size_ratio']:.3f}" if q["size_ratio"] is not None else "-"
        rss = f"{r.rss_mb:.1f}" if r.rss_mb is not None else "-"
        print(
            f"{r.variant:14s} {size:>10s} {sr:>7s} {r.session_s:7.3f} {rss:>7s} {r.p50_ms:8.4f} {r.p90_ms:8.4f} "
            f"{r.throughput:10,.0f} {q['speedup_b1']:6.2f} {q['speedup_batch']:6.2f} {r.max_abs_diff:8.1e}"
        )
    for r in res.rows:
        print(f"  {r.variant}: {r.note}")
    for variant, why in res.skipped.items():
        print(f"  {variant}: not applicable ({why})")
    print(f"  memory: {res.memory}")


if __name__ == "__main__":
    main()
