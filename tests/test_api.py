"""The Python API: connpack.pack / load / export_onnx / report, and the README example run as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import connpack
from connpack import runfile
from connpack.errors import SpecError
from connpack.exporters.module import to_module
from connpack.reporting import Report

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_api_block() -> str:
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_api_block(), "README.md (Python API)", "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "mobilenet.cpk").exists() and (tmp_path / "mobilenet.onnx").exists()
    assert "bits per weight" in capsys.readouterr().out


def test_pack_load_export_report_from_a_run_file(trained, tmp_path):
    desc, _ = runfile.load(trained["prune-free"])
    size = connpack.pack(trained["prune-free"], tmp_path / "m.cpk")
    assert size == (tmp_path / "m.cpk").stat().st_size
    assert connpack.pack(desc, tmp_path / "d.cpk") == size  # a Description packs to the same bytes
    assert (tmp_path / "d.cpk").read_bytes() == (tmp_path / "m.cpk").read_bytes()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        want = to_module(desc)(x)
        assert torch.equal(connpack.load(tmp_path / "m.cpk")(x), want)
        assert torch.equal(connpack.load(trained["prune-free"])(x), want)
    assert connpack.export_onnx(tmp_path / "m.cpk", tmp_path / "m.onnx") == (tmp_path / "m.onnx").stat().st_size
    rep = connpack.report(tmp_path / "m.cpk")
    assert isinstance(rep, Report) and rep.file_bytes == size and rep.method == "prune"


def test_bad_arguments_are_spec_errors_before_writing(trained, tmp_path):
    with pytest.raises(SpecError, match="unknown ONNX export kind 'nope'"):
        connpack.export_onnx(trained["flip-free"], tmp_path / "x.onnx", kind="nope")
    with pytest.raises(SpecError, match="unknown value type 'float8'"):
        connpack.pack(trained["flip-free"], tmp_path / "x.cpk", values="float8")
    with pytest.raises(SpecError, match="cannot pack a int"):
        connpack.pack(3, tmp_path / "x.cpk")
    assert list(tmp_path.iterdir()) == []


def test_import_is_lazy_and_the_api_functions_are_plain_functions():
    code = (
        "import sys, connpack; assert 'torch' not in sys.modules, 'torch imported'; "
        "import connpack.packing, connpack.reporting; "
        "assert callable(connpack.pack) and callable(connpack.report); print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "ok", r.stderr
    from connpack import exporters

    assert exporters.KINDS.keys() >= {"dense", "sparse", "compact", "self-decoding"}
