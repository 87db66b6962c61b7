"""One real export past protobuf's 2 GiB limit: conv6 at width 16 (577.8M weights, 2.15 GiB of float32), dense
ONNX written as graph + external data (connpack.exporters.onnx_file), checked, run by onnxruntime from its path
and compared with the PyTorch module. Needs ~11 GB of memory and ~5 GB of disk; minutes.

    python benchmarks/bench_big_onnx.py /tmp/big/model.onnx
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from connpack import api
from connpack.description import Description, TensorCode
from connpack.exporters.module import to_module
from connpack.packing import architecture_shapes
from connpack.specs import InitSpec, ModelSpec, NetworkSpec


def main() -> None:
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = NetworkSpec(
        model=ModelSpec(arch="conv6", in_shape=(3, 32, 32), num_classes=10, width=16.0),
        method="prune",
        init=InitSpec(dist="signed_constant"),
    )
    names, shapes = architecture_shapes(spec)
    g = np.random.default_rng(0)
    tensors = {
        n: TensorCode("mask", tuple(shapes[n]), bits=g.integers(0, 2, tuple(shapes[n]), dtype=np.uint8).view(bool))
        for n in names
    }
    dense = {k: np.zeros(tuple(s), np.float32) for k, s in shapes.items() if k not in tensors}
    desc = Description(spec, tensors, dense)
    n = sum(int(np.prod(shapes[k])) for k in names)
    print(f"weights {n:,} ({4 * n / 2**30:.2f} GiB float32)", flush=True)
    t = time.perf_counter()
    size = api.write_onnx(desc, out, "dense")
    print(
        f"wrote {size:,} B in {time.perf_counter() - t:.0f} s:",
        sorted((p.name, p.stat().st_size) for p in out.parent.iterdir()),
        flush=True,
    )
    onnx.checker.check_model(str(out))
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        ref = to_module(desc)(torch.from_numpy(x)).numpy()
    print(
        f"max|d| vs PyTorch {float(np.abs(y - ref).max()):.2e}, argmax same {bool((y.argmax(1) == ref.argmax(1)).all())}"
        f"; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"
    )


if __name__ == "__main__":
    main()
