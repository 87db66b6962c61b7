"""Cost of refusing (or reading) the tiny hostile .cpk files of issue 16, each in a fresh process.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.hostile_files

For each file: its size, the outcome, the seconds and the peak-RSS growth of the library call
(`packing.decode(data).state_dict()`, or `reporting.report` for the valid 34M-weight file), measured with
torch already imported (the cost of the file), and the same with torch imported on demand by the call (what
a fresh process pays when the file reaches the architecture check). The acceptance of issue 16: no file
under 1 KB costs more than 2 s or 300 MB to refuse.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
warm = sys.argv[2] == "warm"
if warm:
    import torch  # noqa: F401
from connpack import packing
from connpack.errors import ConnpackError
path = Path(sys.argv[1])
data = path.read_bytes()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    if sys.argv[3] == "report":
        from connpack import reporting

        rep = reporting.report(path)
        out = f"read: {rep.weights:,} weights, zstd-19 {'estimated' if rep.zstd19_estimated else 'exact'}"
    else:
        packing.decode(data).state_dict()
        out = "accepted"
except ConnpackError as e:
    out = f"{type(e).__name__} (exit {e.exit_code})"
dt = time.perf_counter() - t
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"outcome": out, "seconds": dt, "rss_mb": grown}))
"""


def files(tmp: Path) -> list[tuple[str, Path, str]]:
    sys.path.insert(0, str(ROOT))
    from tests import hostile_cpk as H

    made = {
        "metadata {}, a 2**31-bit section": (H.empty_meta_file(), "decode"),
        "ans stream of one word, 2**31 bits declared": (H.ans_stream_file(), "decode"),
        "34M-weight network, wrong hashes": (H.mask_network(), "decode"),
        "34M-weight network, valid, through report": (H.mask_network(H.TINY_WIDTH, H.true_hashes()), "report"),
        "seed true": (H.small_network(meta_spec={"rng": {"seed": True}}), "decode"),
        "in_shape [1, 2**40, 2**40]": (H.small_network(meta_spec={"model": {"in_shape": [1, 2**40, 2**40]}}), "decode"),
        "width 1e6": (H.small_network(meta_spec={"model": {"width": 1e6}}), "decode"),
    }
    out = []
    for i, (name, (data, how)) in enumerate(made.items()):
        p = tmp / f"attack{i}.cpk"
        p.write_bytes(data)
        out.append((name, p, how))
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        rows = []
        for name, path, how in files(Path(d)):
            res = {}
            for mode in ("warm", "cold"):
                r = subprocess.run(
                    [sys.executable, "-c", PROBE, str(path), mode, how],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    timeout=600,
                )
                ok = r.returncode == 0
                res[mode] = json.loads(r.stdout.strip().splitlines()[-1]) if ok else {"error": r.stderr[-300:]}
            rows.append((name, path.stat().st_size, how, res))
    print(f"{'file':48} {'bytes':>5}  {'outcome':38} {'s (torch loaded)':>16} {'MB':>6}   {'s (cold)':>8} {'MB':>6}")
    worst = 0.0, 0.0
    for name, size, how, res in rows:
        w, c = res["warm"], res["cold"]
        if "error" in w or "error" in c:
            print(name, "ERROR", w, c)
            continue
        print(
            f"{name:48} {size:5d}  {w['outcome'][:38]:38} {w['seconds']:16.2f} {w['rss_mb']:6.0f}   "
            f"{c['seconds']:8.2f} {c['rss_mb']:6.0f}"
        )
        if how == "decode":
            worst = max(worst[0], w["seconds"]), max(worst[1], w["rss_mb"])
    print(
        f"worst refusal of a file under 1 KB (torch loaded): {worst[0]:.2f} s, {worst[1]:.0f} MB "
        "(acceptance: 2 s, 300 MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
