"""connpack bench: rows per export, compaction speed-up figures, foreign and corrupt .onnx files."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from connpack import exporters
from connpack.bench import bench
from connpack.errors import SpecError
from connpack.packing import pack
from connpack.specs import ModelSpec
from tests.conftest import run_cli
from tests.test_compact import make_desc


def test_bench_rows_and_compaction_figures(tmp_path):
    desc = make_desc(ModelSpec(arch="lenet300", width=0.5), density=0.2)
    names = list(desc.tensors)
    desc.tensors[names[0]].bits[:75] = False  # half of the first hidden layer is dead
    desc.weight_hashes = {}
    pack(desc, tmp_path / "m.cpk")
    res = bench(tmp_path / "m.cpk", threads=1, runs=5, batch=8, warmup=1)
    assert [r.variant for r in res.rows] == ["pytorch", "dense", "sparse-init", "compact", "sparse", "self-decoding"]
    for r in res.rows:
        assert r.p50_ms > 0 and r.p90_ms >= r.p50_ms and r.throughput > 0
        assert r.max_abs_diff <= 1e-4 and r.argmax_agree == 1.0
    assert res.row("sparse-init").file_bytes < res.row("dense").file_bytes
    assert res.row("compact").file_bytes < 0.5 * res.row("dense").file_bytes
    assert "hidden units removed" in res.row("compact").note
    assert res.row("sparse").file_bytes < res.row("compact").file_bytes and "compacted" in res.row("sparse").note
    assert set(res.ratios()["compact"]) == {"speedup_b1", "speedup_batch", "size_ratio"}


def test_bench_cli_json_foreign_and_corrupt_onnx(tmp_path, runner, trained):
    w = np.eye(4, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "f.onnx")
    r = run_cli(runner, "bench", tmp_path / "f.onnx", "--runs", "3", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["variant"] for row in out["rows"]] == ["onnx"] and out["threads"] == 1
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
    r = run_cli(runner, "bench", tmp_path / "bad.onnx")
    assert r.exit_code == 3 and len(r.stderr.strip().splitlines()) == 1 and "not a valid ONNX" in r.stderr
    r = run_cli(runner, "bench", trained["baseline-free"], "--runs", "3", "--batch", "4")
    assert r.exit_code == 0, r.stderr
    assert "self-decoding: not applicable" in r.stdout and "compact" in r.stdout


def _refuse(module, graphs):
    raise SpecError("cannot express this network")


def test_bench_covers_every_registered_kind(tmp_path, monkeypatch):
    """Every kind of exporters.KINDS is a row or a skip with its reason, a kind added to the registry too."""
    kinds = {
        **exporters.KINDS,
        "refuses": ("onnx_dense", _refuse),
        "plain-again": ("onnx_dense", lambda m, graphs: (graphs.plain(), "registered in a test")),
    }
    monkeypatch.setattr(exporters, "KINDS", kinds)
    pack(make_desc(ModelSpec(arch="lenet300", width=0.25), density=0.2), tmp_path / "m.cpk")
    res = bench(tmp_path / "m.cpk", threads=1, runs=2, batch=4, warmup=0)
    assert [r.variant for r in res.rows[1:]] + list(res.skipped) == [k for k in kinds if k != "refuses"] + ["refuses"]
    assert res.skipped == {"refuses": "cannot express this network"}
    assert res.row("plain-again").note == "registered in a test"
    assert res.row("plain-again").file_bytes == res.row("dense").file_bytes
