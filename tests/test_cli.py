"""The CLI: every stage from the command line, and one-line errors with distinct exit codes."""

import json
import os

import pytest

from tests.conftest import run_cli


def _one_line_error(result, code):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("connpack: error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_train_pack_unpack_eval_report(runner, tmp_path):
    pt, cpk, onnx_path = tmp_path / "m.pt", tmp_path / "m.cpk", tmp_path / "m.onnx"
    r = run_cli(runner, "train", "--dataset", "synthetic-mnist", "--epochs", "1", "--limit", "400", "-q", "-o", pt)
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "m.metrics.json").read_text())[0]["epoch"] == 1
    assert run_cli(runner, "pack", pt).exit_code == 0 and cpk.exists()
    assert run_cli(runner, "unpack", cpk, "--onnx", onnx_path).exit_code == 0 and onnx_path.exists()
    r = run_cli(runner, "eval", onnx_path, "--dataset", "synthetic-mnist", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["accuracy"] > 0.5
    r = run_cli(runner, "eval", cpk, "--dataset", "synthetic-mnist")
    assert r.exit_code == 0 and "accuracy" in r.stdout
    r = run_cli(runner, "report", cpk, "--json")
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and len(rep["rows"]) == 3 and rep["ratio_float32"] > 10
    r = run_cli(runner, "report", cpk)
    assert r.exit_code == 0 and "order-0 bound" in r.stdout


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["train", "--arch", "nope", "--dataset", "synthetic-mnist"], 2, "unknown architecture 'nope'"),
        (["train", "--method", "nope", "--dataset", "synthetic-mnist"], 2, "unknown method 'nope'"),
        (["train", "--init", "nope", "--dataset", "synthetic-mnist"], 2, "unknown init 'nope'"),
        (["train", "--k", "1.5", "--method", "edge-popup", "--dataset", "synthetic-mnist"], 2, "k (fraction"),
        (["train", "--p-positive", "-0.1", "--dataset", "synthetic-mnist"], 2, "p_positive"),
        (["pack", "missing.pt"], 3, "no such file"),
        (["report", "missing.cpk"], 3, "no such file"),
    ],
)
def test_bad_options_give_one_line_errors(runner, tmp_path, args, code, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(runner, *args)
    _one_line_error(r, code)
    assert needle in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_data_dir_is_a_data_error(runner, tmp_path):
    r = run_cli(runner, "train", "--data-dir", tmp_path / "empty", "-o", tmp_path / "m.pt")
    _one_line_error(r, 5)
    assert "connpack data fetch mnist" in r.stderr
    assert not (tmp_path / "m.pt").exists()


def test_corrupt_files_are_refused_without_partial_output(runner, trained, tmp_path):
    cpk = tmp_path / "m.cpk"
    assert run_cli(runner, "pack", trained["flip-minimal"], "-o", cpk).exit_code == 0
    raw = bytearray(cpk.read_bytes())
    # a flipped byte in the last section's payload
    raw[-5] ^= 0x40
    bad = tmp_path / "bad.cpk"
    bad.write_bytes(bytes(raw))
    r = run_cli(runner, "unpack", bad, "--onnx", tmp_path / "bad.onnx")
    _one_line_error(r, 4)
    assert not (tmp_path / "bad.onnx").exists()
    trunc = tmp_path / "trunc.cpk"
    trunc.write_bytes(cpk.read_bytes()[: len(raw) // 2])
    _one_line_error(run_cli(runner, "unpack", trunc, "--onnx", tmp_path / "t.onnx"), 4)
    assert not (tmp_path / "t.onnx").exists()
    _one_line_error(run_cli(runner, "report", trunc), 4)


def test_foreign_pt_files_are_refused(runner, tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(3)}, plain)
    r = run_cli(runner, "pack", plain, "-o", tmp_path / "x.cpk")
    _one_line_error(r, 3)
    assert "not a connpack model file" in r.stderr
    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)  # unpickling it would run os.system
    r = run_cli(runner, "pack", evil, "-o", tmp_path / "y.cpk")
    _one_line_error(r, 3)
    assert "refused" in r.stderr and not (tmp_path / "pwned").exists()
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    _one_line_error(run_cli(runner, "pack", garbage, "-o", tmp_path / "z.cpk"), 3)
    assert not any(p.suffix == ".cpk" for p in tmp_path.iterdir())
