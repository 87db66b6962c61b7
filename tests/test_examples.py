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
    tested = {"pack_torch_pruned_resnet18", "edgepopup_conv6_onnx"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} <= tested


def test_pack_torch_pruned_resnet18(tmp_path, capsys):
    res = load("pack_torch_pruned_resnet18").main(
        ["--image-size", "32", "--num-classes", "10", "--zstd-level", "1", "--codec", "ans", "--batch", "2",
         "--out-dir", str(tmp_path)])
    sizes = res["sizes"]
    before, after = sizes["torch.save, pruned (weight_orig + weight_mask)"], sizes["torch.save, after prune.remove (zeros)"]
    assert before > 1.9 * after  # weight_orig + weight_mask
    assert sizes["connpack .cpk, float32 values"] < after / 8
    assert sizes["connpack .cpk, float16 values"] < 0.6 * sizes["connpack .cpk, float32 values"]
    assert res["errors"]["float32"] == 0.0 and res["errors"]["onnxruntime (dense, float32)"] < 1e-4
    assert res["kept"] == res["weights"] - round(0.9 * res["weights"])
    assert "the values dominate" in capsys.readouterr().out


def test_edgepopup_conv6_onnx(tmp_path):
    res = load("edgepopup_conv6_onnx").main(
        ["--dataset", "synthetic-cifar", "--epochs", "1", "--limit", "128", "--width", "0.125", "--out-dir",
         str(tmp_path)])
    assert res["agree"] == 1.0 and 0.0 <= res["accuracy"] <= 1.0
    assert (tmp_path / "model.onnx").exists()
    assert res["cpk_bytes"] * 8 / res["weights"] < 1.5  # a mask bit per weight (k = 0.5), entropy coded, + header
