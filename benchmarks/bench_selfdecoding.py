"""Self-decoding ONNX against the .cpk it comes from: size, session creation, batch-64 speed, exactness.

    .venv/bin/python benchmarks/bench_selfdecoding.py MODEL.pt|MODEL.cpk [...]

Per network: the default (entropy-coded) .cpk size, the self-decoding graph's size and ratio, the code
chosen per tensor, onnxruntime session creation (wall and CPU seconds, one intra-op thread), batch-64
throughput against the dense export (same session options, interleaved runs), max |delta| against the
PyTorch module of ``connpack unpack`` and whether every regenerated weight is bit-identical.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _session(data: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    w0, c0 = time.perf_counter(), time.process_time()
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess, time.perf_counter() - w0, time.process_time() - c0


def _throughput(sessions, x, rounds: int = 10, reps: int = 20) -> list[float]:
    best = [0.0] * len(sessions)
    for _ in range(rounds):  # interleaved, best of rounds: fair under a shared machine's load
        for i, s in enumerate(sessions):
            t = time.perf_counter()
            for _ in range(reps):
                s.run(None, {"input": x})
            best[i] = max(best[i], reps * len(x) / (time.perf_counter() - t))
    return best


def main(paths: list[str]) -> None:
    import onnx
    import torch

    from connpack import runfile
    from connpack.exporters import onnx_bitcode, onnx_dense, onnx_selfdecoding
    from connpack.exporters.module import to_module
    from connpack.packing import pack, unpack

    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:
            if path.endswith(".cpk"):
                cpk_path = Path(path)
            else:
                desc, _ = runfile.load(path)
                cpk_path = Path(tmp) / "m.cpk"
                pack(desc, cpk_path)
            cpk = cpk_path.stat().st_size
            desc = unpack(cpk_path)
            proto = onnx_selfdecoding.to_onnx(desc)
            data = proto.SerializeToString()
            print(
                f"{path}: {desc.spec.model.arch} {desc.spec.method}  .cpk {cpk:,} B  self-decoding {len(data):,} B"
                f"  ratio {len(data) / cpk:.3f}"
            )
            for name, code in desc.tensors.items():
                c = onnx_bitcode.encode(code.bits, onnx_bitcode.view_of(code.shape))
                how = (
                    c.kind
                    + (f" k={c.k}" if c.kind == "rice" else "")
                    + (" inverted" if c.invert else "")
                    + (" rows/cols" if "rows" in c.arrays else "")
                )
                print(
                    f"  {name:24s} {code.kind:8s} {desc.spec.init_for(name).dist:16s} density {code.density():.4f}"
                    f"  {how:22s} ~{c.size:,} B"
                )
            sess, wall, cpu = _session(data)
            print(f"  session creation: {wall:.3f} s wall, {cpu:.3f} s CPU")
            dense_sess = _session(onnx_dense.to_onnx(desc).SerializeToString())[0]
            x = np.random.default_rng(0).random((64, *desc.spec.model.in_shape), dtype=np.float32)
            with torch.no_grad():
                ref = to_module(desc)(torch.from_numpy(x)).numpy()
            got = sess.run(None, {"input": x})[0]
            print(
                f"  max |delta| vs PyTorch {np.abs(got - ref).max():.2e}, same argmax {bool((got.argmax(1) == ref.argmax(1)).all())}"
            )
            m = onnx.ModelProto()
            m.CopyFrom(proto)
            m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in desc.tensors)
            ws = _session(m.SerializeToString())[0].run(list(desc.tensors), {"input": x[:1]})
            sd = desc.state_dict()
            same = all(w.tobytes() == sd[n].tobytes() for n, w in zip(desc.tensors, ws))
            print(f"  weights bit-identical to unpack: {same}")
            tp, dtp = _throughput([sess, dense_sess], x)
            print(f"  batch-64 throughput: self-decoding {tp:,.0f}/s, dense {dtp:,.0f}/s, ratio {tp / dtp:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
