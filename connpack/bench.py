"""Inference benchmark: every export of one network, timed the same way in one process.

Variants of a .cpk (or a connpack model.pt): PyTorch eager on the materialised module, and onnxruntime on
every ONNX export kind of ``connpack.exporters.KINDS`` (dense, sparse-init, compact, sparse, self-decoding, ...);
a kind that cannot express the network is listed in ``skipped`` with its reason. An .onnx file that is not ours
is benchmarked as it is (one onnxruntime row).

Method: threads pinned to ``threads`` (onnxruntime: ``intra_op_num_threads``, sequential execution with one
inter-op thread; PyTorch: ``torch.set_num_threads``); inputs with a fixed seed, uniform over the raw range the data
contract records (the graphs normalise them; PyTorch gets them normalised), else N(0, 1); ``warmup`` runs, then ``runs``
timed runs at batch 1 (latency p50/p90) and ``max(10, runs // 5)`` timed runs at ``batch`` (throughput).
Session creation is timed once. Memory is the growth of the process's resident set (/proc/self/statm, RSS
delta) across session creation + one batch run -- native allocations included, which tracemalloc would
miss; memory freed and reused inside the process can hide part of it, so read it as a lower bound.
Each row's output at ``batch`` is compared with the first row's (max |diff|, argmax agreement).
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from connpack.errors import InputFileError, SpecError
from connpack.files import regular_file

MEMORY_METHOD = "RSS delta (/proc/self/statm) over session creation + first batch run"


@dataclass
class Row:
    variant: str
    runtime: str
    file_bytes: int | None
    session_s: float
    rss_mb: float | None
    p50_ms: float
    p90_ms: float
    throughput: float  # images / s at the batch size
    max_abs_diff: float = 0.0  # vs the first row, on the batch
    argmax_agree: float = 1.0
    note: str = ""


@dataclass
class BenchResult:
    source: str
    rows: list[Row]
    threads: int
    batch: int
    runs: int
    warmup: int
    cpu_count: int
    memory: str = MEMORY_METHOD
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why it does not apply
    inputs: str = "N(0, 1)"  # what the graphs are fed (the data contract's raw range when recorded)

    def row(self, variant: str) -> Row | None:
        return next((r for r in self.rows if r.variant == variant), None)

    def ratios(self, base: str = "dense") -> dict[str, dict[str, float | None]]:
        """Per variant vs ``base``: batch-1 speed-up (p50), batch throughput ratio, file size ratio."""
        ref = self.row(base)
        if ref is None:
            return {}
        out = {}
        for r in self.rows:
            out[r.variant] = {
                "speedup_b1": ref.p50_ms / r.p50_ms,
                "speedup_batch": r.throughput / ref.throughput,
                "size_ratio": (r.file_bytes / ref.file_bytes) if r.file_bytes and ref.file_bytes else None,
            }
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratios_vs_dense"] = self.ratios()
        return d


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _time_runs(fn, x1: np.ndarray, xb: np.ndarray, runs: int, warmup: int) -> tuple[float, float, float]:
    for _ in range(warmup):
        fn(x1)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn(x1)
        times[i] = time.perf_counter() - t0
    fn(xb)
    n_b = max(10, runs // 5)
    t0 = time.perf_counter()
    for _ in range(n_b):
        fn(xb)
    tput = n_b * len(xb) / (time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 90) * 1e3), float(tput)


def _ort_row(variant: str, data: bytes, x1, xb, threads: int, runs: int, warmup: int, note: str = ""):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    gc.collect()
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    try:
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise InputFileError(f"onnxruntime cannot load the {variant} graph: {str(e).splitlines()[0]}") from None
    session_s = time.perf_counter() - t0
    name = sess.get_inputs()[0].name
    fn = lambda x: sess.run(None, {name: x})[0]  # noqa: E731
    try:
        out = fn(xb)
    except Exception as e:  # a graph that passes the checker but cannot run on images
        raise InputFileError(f"onnxruntime cannot run the {variant} graph: {str(e).splitlines()[0]}") from None
    if not isinstance(out, np.ndarray) or out.shape[:1] != (len(xb),) or out.ndim != 2:
        raise InputFileError(
            f"the {variant} graph's first output has shape {getattr(out, 'shape', None)} for a batch "
            f"of {len(xb)}; bench needs (batch, classes) scores"
        )
    rss1 = _rss_bytes()
    p50, p90, tput = _time_runs(fn, x1, xb, runs, warmup)
    rss = (rss1 - rss0) / 2**20 if rss0 is not None and rss1 is not None else None
    return Row(variant, "onnxruntime", len(data), session_s, rss, p50, p90, tput, note=note), out


def _torch_row(desc, x1, xb, threads: int, runs: int, warmup: int):
    import torch

    from connpack.exporters.module import to_module

    torch.set_num_threads(threads)
    gc.collect()
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    model = to_module(desc)
    session_s = time.perf_counter() - t0

    @torch.inference_mode()
    def fn(x):
        return model(torch.from_numpy(x)).numpy()

    out = fn(xb)
    rss1 = _rss_bytes()
    p50, p90, tput = _time_runs(fn, x1, xb, runs, warmup)
    rss = (rss1 - rss0) / 2**20 if rss0 is not None and rss1 is not None else None
    return Row("pytorch", "pytorch eager", None, session_s, rss, p50, p90, tput, note="materialised module"), out


def _onnx_input_shape(proto) -> tuple[int, ...]:
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise InputFileError(f"the graph has {len(inputs)} inputs; bench needs exactly one image input")
    t = inputs[0].type.tensor_type
    if t.elem_type != 1:
        raise InputFileError("the graph's input is not float32; bench feeds float32 images")
    dims = list(t.shape.dim)
    if not dims or any(not d.HasField("dim_value") for d in dims[1:]):
        raise InputFileError("the graph's input has unknown dimensions besides the batch; bench cannot make inputs")
    return tuple(int(d.dim_value) for d in dims[1:])


def _load_source(path: Path, max_weights: int | None = None):
    """(Description or None, onnx bytes or None)."""
    regular_file(path)
    if path.suffix == ".onnx":
        import onnx

        data = path.read_bytes()
        try:
            proto = onnx.load_from_string(data)
            onnx.checker.check_model(proto)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputFileError(f"{path}: not a valid ONNX model ({msg})") from None
        return None, data
    if path.suffix == ".pt":
        from connpack import runfile

        return runfile.load(path)[0], None
    from connpack.packing import load_checked

    return load_checked(path, **({"max_weights": max_weights} if max_weights else {})), None


def bench(
    path: str | Path,
    threads: int = 1,
    runs: int = 200,
    batch: int = 64,
    warmup: int = 10,
    seed: int = 0,
    max_weights: int | None = None,
) -> BenchResult:
    """Benchmark every applicable export of ``path`` (.cpk, connpack .pt, or any .onnx); ``max_weights``:
    packing.unpack's budget for a .cpk."""
    if threads < 1 or runs < 1 or batch < 1 or warmup < 0:
        raise SpecError("threads, runs and batch must be >= 1 and warmup >= 0")
    path = Path(path)
    desc, onnx_bytes = _load_source(path, max_weights)
    rows: list[Row] = []
    outs: list[np.ndarray] = []
    skipped: dict[str, str] = {}
    rs = np.random.default_rng(seed)

    def add(row_out):
        row, out = row_out
        rows.append(row)
        outs.append(out)

    def inputs(shape, record, takes):
        """(x1, xb, what the ONNX graphs get, what PyTorch gets): uniform over the recorded raw range, else N(0, 1)."""
        if takes == "raw" and record.range is not None:
            lo, hi = record.range
            x1, xb = ((lo + (hi - lo) * rs.random((n, *shape))).astype(np.float32) for n in (1, batch))
            what = f"uniform in [{lo:g}, {hi:g}], the raw range of {record.dataset}, normalised in the graphs"
        else:
            x1, xb = (rs.standard_normal((n, *shape), dtype=np.float32) for n in (1, batch))
            what = "N(0, 1)" + (f", normalised in the graphs as {record.dataset}" if takes == "raw" else "")
        return x1, xb, what

    if onnx_bytes is not None:
        import onnx

        from connpack.exporters.onnx_input import read_contract

        proto = onnx.load_from_string(onnx_bytes)
        x1, xb, what = inputs(_onnx_input_shape(proto), *read_contract(proto, str(path)))
        add(_ort_row("onnx", onnx_bytes, x1, xb, threads, runs, warmup, note=path.name))
    else:
        from connpack import exporters
        from connpack.exporters.onnx_input import choose

        takes = choose(desc.data, None)  # the graphs as `connpack unpack` writes them
        x1, xb, what = inputs(desc.spec.model.in_shape, desc.data, takes)
        if takes == "raw":  # PyTorch gets the same inputs, normalised as the graphs do it (float32)
            mean, std = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (desc.data.mean, desc.data.std))
            t1, tb = (x1 - mean) / std, (xb - mean) / std
        else:
            t1, tb = x1, xb
        add(_torch_row(desc, t1, tb, threads, runs, warmup))
        graphs = exporters.Graphs(desc)  # the torch.onnx and compacted graphs, built once for all kinds
        for kind in exporters.KINDS:
            try:
                proto, note = exporters.build(desc, kind, takes, graphs)
            except SpecError as e:  # the kind cannot express this network
                skipped[kind] = str(e)
                continue
            add(_ort_row(kind, proto.SerializeToString(), x1, xb, threads, runs, warmup, note))
    ref = outs[0]
    for row, out in zip(rows, outs):
        row.max_abs_diff = float(np.abs(out - ref).max())
        row.argmax_agree = float((out.argmax(1) == ref.argmax(1)).mean())
    return BenchResult(str(path), rows, threads, batch, runs, warmup, os.cpu_count() or 0, skipped=skipped, inputs=what)
