"""Every script in examples/ runs, with tiny settings, and checks what it claims."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_has_a_test():
    tested = {"pack_torch_pruned_resnet18", "edgepopup_conv6_onnx", "onnx_raw_pixels"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} <= tested


def test_pack_torch_pruned_resnet18(tmp_path, capsys):
    res = load("pack_torch_pruned_resnet18").main(
        [
            "--image-size",
            "32",
            "--num-classes",
            "10",
            "--zstd-level",
            "1",
            "--codec",
            "ans",
            "--batch",
            "2",
            "--out-dir",
            str(tmp_path),
        ]
    )
    sizes = res["sizes"]
    before, after = (
        sizes["torch.save, pruned (weight_orig + weight_mask)"],
        sizes["torch.save, after prune.remove (zeros)"],
    )
    assert before > 1.9 * after  # weight_orig + weight_mask
    assert sizes["connpack .cpk, float32 values"] < after / 8
    assert sizes["connpack .cpk, float16 values"] < 0.6 * sizes["connpack .cpk, float32 values"]
    assert res["errors"]["float32"] == 0.0 and res["errors"]["onnxruntime (dense, float32)"] < 1e-4
    assert res["kept"] == res["weights"] - round(0.9 * res["weights"])
    assert "the values dominate" in capsys.readouterr().out


def test_edgepopup_conv6_onnx(tmp_path):
    res = load("edgepopup_conv6_onnx").main(
        [
            "--dataset",
            "synthetic-cifar",
            "--epochs",
            "1",
            "--limit",
            "128",
            "--width",
            "0.125",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert res["agree"] == 1.0 and 0.0 <= res["accuracy"] <= 1.0
    assert (tmp_path / "model.onnx").exists()
    assert res["cpk_bytes"] * 8 / res["weights"] < 1.5  # a mask bit per weight (k = 0.5), entropy coded, + header


def test_onnx_raw_pixels(tmp_path):
    """The 10-line onnxruntime script (no connpack) on raw idx pixels gives the accuracy connpack computes with
    its own preprocessing: here 100% on labels that are connpack's own predictions for 64 random images."""
    import gzip
    import subprocess
    import sys

    import numpy as np
    import torch

    from connpack import data, exporters
    from connpack.contract import DataContract
    from connpack.description import Description, TensorCode
    from connpack.exporters.module import to_module
    from connpack.specs import ModelSpec, NetworkSpec

    spec = NetworkSpec(model=ModelSpec(arch="lenet300", in_shape=(1, 28, 28), width=0.05))
    g = np.random.default_rng(0)
    shapes = {"fc1.weight": (15, 784), "fc2.weight": (5, 15), "fc3.weight": (10, 5)}
    record = DataContract("fashion-mnist", (0.286,), (0.353,), (0.0, 1.0), data.FASHION_CLASSES)
    desc = Description(spec, {n: TensorCode("flip", s, bits=g.random(s) < 0.3) for n, s in shapes.items()}, data=record)
    pixels = g.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        x = data.normalise(torch.from_numpy(pixels[:, None]).float() / 255.0, record.mean, record.std)
        labels = to_module(desc)(x).argmax(1).numpy().astype(np.uint8)
    (tmp_path / "m.onnx").write_bytes(exporters.to_onnx(desc, "dense").SerializeToString())
    with gzip.open(tmp_path / "images.gz", "wb") as f:
        f.write(b"\0\0\x08\x03" + (64).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + pixels.tobytes())
    (tmp_path / "labels").write_bytes(b"\0\0\x08\x01" + (64).to_bytes(4, "big") + labels.tobytes())
    r = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "onnx_raw_pixels.py"),
            str(tmp_path / "m.onnx"),
            str(tmp_path / "images.gz"),
            str(tmp_path / "labels"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"accuracy 100.00% on fashion-mnist; first: {data.FASHION_CLASSES[labels[0]]}"
    assert len((EXAMPLES / "onnx_raw_pixels.py").read_text().splitlines()) <= 14  # ~10 lines of code + docstring
