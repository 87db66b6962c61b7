"""Pack / unpack / peak memory at scale (ResNet-50, 25.5M weights; VGG-16, 138M) next to torch.load and
safetensors, and the CLI's start-up next to ``python -c "import torch"``. Everything in one run:

    python benchmarks/bench_scale.py [--nets resnet50,vgg16] [--repeat 3] [--dir /tmp/x] [--cli-only]

Networks: torchvision's ResNet-50 / VGG-16 shapes (1000 classes), a random mask keeping 50% of every
connectivity weight, weights signed constant or kaiming normal; other tensors dense.

  pack     Description -> .cpk (hash of every regenerated weight, |G| order trial for kaiming normal, coding),
           in a child process that holds only the masks (no torch): peak RSS is measured from there.
  unpack   .cpk -> float32 state_dict (validate, check the architecture, decode, regenerate, hash-check,
           materialise), in a child process with torch imported (the architecture check needs it); its
           peak RSS is reported absolute and above the RSS before unpacking (torch alone is ~0.5 GB here).
  torch.load / safetensors.torch.load_file of the same float32 tensors, from the page cache
           (safetensors is a benchmark-only extra: ``pip install safetensors``; skipped when absent).

Times: best of --repeat, wall and CPU (all threads). On a shared machine trust CPU time and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NETS = {"resnet50": ("torchvision:resnet50", 25.5e6), "vgg16": ("torchvision:vgg16", 138e6)}
INITS = ("signed_constant", "kaiming_normal")
MB = 1 << 20
SMALL = Path(__file__).resolve().parents[1] / "formats" / "vectors" / "net_mask.cpk"  # report of a small network


# --------------------------------------------------------------------------- child-process workers
def _rss_now() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> None:
    """Start the peak-RSS count afresh (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _description(arch: str, init: str, shapes: dict, names: list):
    from connpack.description import Description, TensorCode
    from connpack.specs import InitSpec, ModelSpec, NetworkSpec

    spec = NetworkSpec(
        model=ModelSpec(arch=arch, in_shape=(3, 224, 224), num_classes=1000), method="prune", init=InitSpec(dist=init)
    )
    g = np.random.default_rng(0)
    tensors = {
        n: TensorCode("mask", tuple(shapes[n]), bits=g.integers(0, 2, tuple(shapes[n]), dtype=np.uint8).view(bool))
        for n in names
    }
    dense = {
        k: np.full(tuple(s), 1.0 if k.endswith((".weight", "running_var")) else 0.0, np.float32)
        for k, s in shapes.items()
        if k not in tensors
    }
    return Description(spec, tensors, dense)


def _timed(fn, repeat: int):
    runs = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    return min(runs)


def worker_pack(job: dict) -> dict:
    from connpack import packing

    desc = _description(job["arch"], job["init"], job["shapes"], job["names"])
    masks = sum(c.bits.nbytes for c in desc.tensors.values())
    base = _rss_now()
    _reset_peak()
    wall, cpu = _timed(lambda: packing.pack(desc, job["cpk"]), job["repeat"])
    return {
        "wall": wall,
        "cpu": cpu,
        "peak": _peak(),
        "base": base,
        "masks": masks,
        "size": os.path.getsize(job["cpk"]),
        "torch": "torch" in sys.modules,
    }


def worker_unpack(job: dict) -> dict:
    import torch  # noqa: F401  (the architecture check imports it; count it in the baseline)

    from connpack import packing

    packing.unpack(job["cpk"])  # warm: imports, the architecture's meta-device build
    base = _rss_now()
    _reset_peak()
    holder = {}

    def run():
        holder.pop("sd", None)
        holder["sd"] = packing.unpack(job["cpk"]).state_dict()

    wall, cpu = _timed(run, job["repeat"])
    result = sum(v.nbytes for v in holder["sd"].values())
    return {"wall": wall, "cpu": cpu, "peak": _peak(), "base": base, "result": result}


def _child(kind: str, job: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    r = subprocess.run(
        [sys.executable, __file__, "--worker", kind],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if r.returncode:
        raise SystemExit(f"{kind} worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- parent
def _loads(cpk: Path, work: Path, repeat: int) -> dict:
    """torch.load and safetensors of the float32 state_dict that unpack gives."""
    import torch

    from connpack import packing

    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in packing.unpack(cpk).state_dict().items()}
    pt = work / "w.pt"
    torch.save(sd, pt)
    out = {"pt_bytes": pt.stat().st_size}
    try:
        from safetensors.torch import load_file, save_file
    except ImportError:
        load_file = None
    if load_file is not None:
        st = work / "w.safetensors"
        save_file(sd, st)
        st.read_bytes()
    del sd
    pt.read_bytes()  # page cache
    out["torch_load"] = _timed(lambda: torch.load(pt, weights_only=True), repeat)
    if load_file is not None:
        out["safetensors"] = _timed(lambda: load_file(st), repeat)
    return out


def _cli_times(cpk: Path, repeat: int) -> dict:
    exe = Path(sys.executable).with_name("connpack")
    cmds = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "connpack --help": [str(exe), "--help"],
        "connpack pack --help": [str(exe), "pack", "--help"],
        f"connpack report {SMALL.name}": [str(exe), "report", str(SMALL)],
        f"connpack report {cpk.name}": [str(exe), "report", str(cpk)],
    }
    out = {}
    for label, cmd in cmds.items():
        runs = []
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            runs.append((wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
        out[label] = min(runs)
    return out


def _tables(rows: list) -> None:
    print()
    print(
        f"{'network':10s}{'init':17s}{'weights':>12s}{'.cpk B':>11s} | {'pack wall':>9s}{'CPU':>7s} | "
        f"{'unpack wall':>11s}{'CPU':>7s} | {'torch.load':>10s}{'CPU':>7s} | {'safetens.':>9s}{'CPU':>7s} | "
        f"{'unpack/load wall':>16s}{'CPU':>6s}"
    )
    for net, init, weights, p, u, ld in rows:
        tl = ld["torch_load"]
        st = ld.get("safetensors", (float("nan"), float("nan")))
        print(
            f"{net:10s}{init:17s}{weights:12,d}{p['size']:11,d} | {p['wall']:9.3f}{p['cpu']:7.3f} | "
            f"{u['wall']:11.3f}{u['cpu']:7.3f} | {tl[0]:10.3f}{tl[1]:7.3f} | {st[0]:9.3f}{st[1]:7.3f} | "
            f"{u['wall'] / tl[0]:15.2f}x{u['cpu'] / max(tl[1], 1e-9):5.2f}x"
        )
    print("\npeak RSS (MB)")
    print(
        f"{'network':10s}{'init':17s} | {'pack peak':>9s}{'masks':>7s}{'masks+300':>10s} | "
        f"{'unpack peak':>11s}{'before':>7s}{'growth':>7s}{'result':>7s}{'1.25x+300':>10s}"
    )
    for net, init, weights, p, u, ld in rows:
        print(
            f"{net:10s}{init:17s} | {p['peak'] / MB:9.0f}{p['masks'] / MB:7.0f}{p['masks'] / MB + 300:10.0f} | "
            f"{u['peak'] / MB:11.0f}{u['base'] / MB:7.0f}{(u['peak'] - u['base']) / MB:7.0f}"
            f"{u['result'] / MB:7.0f}{1.25 * u['result'] / MB + 300:10.0f}"
        )
    if any(p["torch"] for *_x, p, _u, _l in rows):
        print("note: the pack worker imported torch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="resnet50,vgg16")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument(
        "--cli-only",
        action="store_true",
        help="only the CLI start-up (report reads the first net packed with signed constant weights)",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        job = json.loads(sys.stdin.read())
        print(json.dumps({"pack": worker_pack, "unpack": worker_unpack}[a.worker](job)))
        return
    from connpack import rng
    from connpack.packing import architecture_shapes
    from connpack.specs import ModelSpec, NetworkSpec

    work = a.dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at start; "
        f"generator backend: {rng.backend()}"
    )
    rows, cli_cpk = [], None
    for net in a.nets.split(","):
        arch, _ = NETS[net]
        names, shapes = architecture_shapes(
            NetworkSpec(model=ModelSpec(arch=arch, in_shape=(3, 224, 224), num_classes=1000))
        )
        weights = sum(int(np.prod(shapes[n])) for n in names)
        repeat = a.repeat if weights < 50e6 else max(1, a.repeat - 1)
        for init in INITS:
            cpk = work / f"{net}-{init}.cpk"
            job = {"arch": arch, "init": init, "shapes": shapes, "names": names, "cpk": str(cpk), "repeat": repeat}
            if a.cli_only:
                _child("pack", {**job, "repeat": 1})
                cli_cpk = cpk
                break
            p = _child("pack", job)
            u = _child("unpack", job)
            loads = _loads(cpk, work, repeat)
            rows.append((net, init, weights, p, u, loads))
            cli_cpk = cli_cpk or cpk
            print(f"  done {net} {init} (load {os.getloadavg()[0]:.1f})", flush=True)
        if cli_cpk is not None and a.cli_only:
            break
    if rows:
        _tables(rows)
    cli = _cli_times(cli_cpk, a.repeat)
    torch_wall = cli["python -c 'import torch'"][0]
    print("\nCLI start-up (best of %d, wall / CPU s, ratio to import torch wall)" % a.repeat)
    for label, (wall, cpu) in cli.items():
        print(f"  {label:45s}{wall:7.3f}{cpu:7.3f}   {wall / torch_wall:5.2f}x")
    print(f"\nmachine load average {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
