"""ONNX graphs past protobuf's 2 GiB limit: written as graph + external data, checked, all or none.

A real > 2 GiB network takes minutes and GBs, so the limit (onnx_file.EXTERNAL_AT) is lowered here: the same
code runs, on LeNet-300-100.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from connpack import api, exporters
from connpack.exporters import onnx_file
from tests.conftest import run_cli

X = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)


def _run(source) -> np.ndarray:
    sess = ort.InferenceSession(
        source if isinstance(source, bytes) else str(source), providers=["CPUExecutionProvider"]
    )
    return sess.run(None, {"input": X})[0]


@pytest.fixture
def cpk(trained, tmp_path):
    path = tmp_path / "net.cpk"
    api.pack(trained["flip-free"], path)
    return path


@pytest.mark.parametrize("kind", ["dense", "compact", "self-decoding"])
def test_past_the_limit_the_graph_and_its_external_data_run_like_one_file(cpk, tmp_path, monkeypatch, kind):
    desc = api.load_description(cpk)
    whole = exporters.to_onnx(desc, kind).SerializeToString()
    monkeypatch.setattr(onnx_file, "EXTERNAL_AT", 1000)
    out = tmp_path / "big.onnx"
    size = api.write_onnx(desc, out, kind)
    data = onnx_file.data_path(out)
    assert data.exists() and size == out.stat().st_size + data.stat().st_size
    graph = onnx.load(str(out), load_external_data=False)  # every large tensor lives in the .data file
    assert any(t.external_data for t in graph.graph.initializer)
    assert all(len(t.raw_data) < onnx_file.MIN_EXTERNAL for t in graph.graph.initializer)
    onnx.checker.check_model(str(out), full_check=True)
    np.testing.assert_array_equal(_run(out), _run(whole))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data", "net.cpk"]  # no temp file


def test_check_sets_large_tensors_aside_and_puts_them_back(cpk, monkeypatch):
    proto = exporters.to_onnx(api.load_description(cpk), "dense")
    before = proto.SerializeToString()
    monkeypatch.setattr(onnx_file, "EXTERNAL_AT", 1000)
    onnx_file.check(proto, full_check=True)
    assert proto.SerializeToString() == before
    proto.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(onnx.checker.ValidationError):
        onnx_file.check(proto, full_check=True)


def test_unpack_writes_the_data_file_with_the_graph_or_nothing(runner, cpk, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_file, "EXTERNAL_AT", 1000)
    out, pt = tmp_path / "m.onnx", tmp_path / "m.pt"
    r = run_cli(runner, "unpack", cpk, "--onnx", out, "--pt", pt)
    assert r.exit_code == 0, r.output
    assert "m.onnx.data beside it" in " ".join(r.output.split())
    assert out.exists() and onnx_file.data_path(out).exists() and pt.exists()
    for p in (out, onnx_file.data_path(out), pt):
        p.unlink()

    from connpack import ptfile

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ptfile, "save", full_disk)
    r = run_cli(runner, "unpack", cpk, "--onnx", out, "--pt", pt)
    assert r.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.cpk"]  # graph, data and temp files all gone


def test_a_small_dense_graph_sets_no_storage_fields(cpk):
    """The export goes through a scratch file; a graph that fits one file keeps the bytes it had when it was
    exported to memory: no initializer carries an explicit data_location or external_data."""
    proto = exporters.to_onnx(api.load_description(cpk), "dense")
    assert not any(t.HasField("data_location") or t.external_data for t in proto.graph.initializer)
