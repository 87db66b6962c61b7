"""The CLI pays for what it uses: help texts, pack --help, data fetch and report import no torch, onnx or
onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


HEAVY = ("torch", "onnx", "onnxruntime", "torchvision")
PROBE = """
import json, sys
from connpack.cli import main
codes = []
for args in json.loads(sys.argv[1]):  # one command line after the other, in one process
    sys.argv = ["connpack"] + args
    try:
        main()
    except SystemExit as e:
        codes.append(e.code)
    else:
        codes.append(0)
print(json.dumps({"code": max(codes), "heavy": sorted(m for m in %r if m in sys.modules)}))
"""


def _run(*commands: list[str], heavy: tuple[str, ...] = HEAVY) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", PROBE % (heavy,), json.dumps(commands)], capture_output=True, text=True, check=False
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_help_imports_nothing_heavy():
    got = _run(
        ["--help"],
        ["pack", "--help"],
        ["unpack", "--help"],
        ["train", "--help"],
        ["report", "--help"],
        ["eval", "--help"],
        ["demo", "--help"],
        ["bench", "--help"],
        ["compare", "--help"],
        ["data", "--help"],
        ["data", "fetch", "--help"],
    )
    assert got == {"code": 0, "heavy": []}


def test_train_help_imports_no_numpy(tmp_path):
    """train's options come from the methods' Hparams: reading them imports no method's numpy code."""
    assert _run(["train", "--help"], heavy=(*HEAVY, "numpy")) == {"code": 0, "heavy": []}
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    got = _run(["eval", str(tmp_path / "bad.onnx")], heavy=("numpy",))  # the probe sees numpy (onnx imports it)
    assert got["code"] == 3 and got["heavy"] == ["numpy"]


def test_the_probe_sees_heavy_imports(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx file")
    got = _run(["eval", str(tmp_path / "bad.onnx")])  # eval's body imports onnx, then refuses the file
    assert got["code"] == 3 and "onnx" in got["heavy"]


def test_data_fetch_imports_nothing_heavy(tmp_path):
    from connpack import data

    got = _run(["data", "fetch", "no-such-dataset", "--data-dir", str(tmp_path)])
    assert got["code"] == 5 and got["heavy"] == []
    raw = tmp_path / "MNIST" / "raw"  # files in place: the whole command body runs, nothing to download
    raw.mkdir(parents=True)
    for pair in data.MNIST_FILES.values():
        for f in pair:
            (raw / f).write_bytes(b"")
    got = _run(["data", "fetch", "mnist", "--data-dir", str(tmp_path)])
    assert got == {"code": 0, "heavy": []}


def test_report_imports_nothing_heavy():
    """report reads a .cpk, checks every weight and prints the torch.save column without importing torch."""
    from pathlib import Path

    vectors = Path(__file__).resolve().parents[1] / "formats" / "vectors"
    got = _run(
        *(["report", str(vectors / f"{v}.cpk")] for v in ("net_mask", "net_values", "net_quant")),
        ["report", str(vectors / "net_flip.cpk"), "--json"],
    )
    assert got == {"code": 0, "heavy": []}


@pytest.mark.parametrize(
    "command",
    [
        ["unpack", "{f}", "--onnx", "{d}/out.onnx", "--pt", "{d}/out.pt"],
        ["eval", "{f}", "--dataset", "mnist"],
        ["bench", "{f}"],
        ["report", "{f}"],
        ["compare", "{f}", "{f}", "--dataset", "mnist"],
    ],
)
def test_a_wrong_hash_is_refused_before_importing_torch(tmp_path, command):
    """Issue 16: a 398-byte file describing 34M weights with a wrong hash is refused on its first tensor by
    every command that reads a .cpk, before torch or onnxruntime is imported, and leaves no output."""
    from tests import hostile_cpk as H

    bad = tmp_path / "bad.cpk"
    bad.write_bytes(H.mask_network())
    assert bad.stat().st_size < 1024
    got = _run([a.format(f=bad, d=tmp_path) for a in command])
    assert got["code"] == 4 and not {"torch", "torchvision", "onnxruntime"} & set(got["heavy"])  # eval reads onnx
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.cpk"]


def test_unpack_reuses_the_checked_weights(monkeypatch):
    """The weights checked before the export are the ones exported: regenerated once, not twice."""
    from pathlib import Path

    from connpack import packing, rng

    calls = []
    real = rng.generate_range
    monkeypatch.setattr(rng, "generate_range", lambda *a, **k: calls.append(a) or real(*a, **k))
    desc = packing.unpack(Path(__file__).resolve().parents[1] / "formats" / "vectors" / "net_mask.cpk")
    first = desc.state_dict()
    n = len(calls)
    second = desc.state_dict()
    assert n > 0 and len(calls) == n  # the second call regenerated nothing
    assert first.keys() == second.keys() and all(first[k] is second[k] for k in first)
    assert desc.state_dict(verify=False) is not None and len(calls) > n  # unverified: made afresh
