"""Streamed ImageFolder data (--dataset imagefolder:DIR), end to end: train -> pack -> unpack -> eval."""

import json

import numpy as np
import pytest
import torch

from connpack import data, runfile
from connpack.api import load_description
from connpack.distributed import Context
from tests.conftest import run_cli

CLASSES = ("apple", "berry", "cherry")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three classes of small PNGs: class c is bright in colour channel c, plus noise."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagefolder")
    rs = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 10)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = rs.integers(0, 90, size=(20, 20, 3), dtype=np.uint8)
                img[..., c] += 150
                Image.fromarray(img).save(root / split / name / f"{i:03d}.png")
    return root


def test_classes_shape_and_normalisation(folder):
    meta = data.info(f"imagefolder:{folder}", 16)
    assert (meta.in_shape, meta.num_classes) == ((3, 16, 16), 3)
    test = data.open_split(f"imagefolder:{folder}", "test", image_size=16)
    x, y = next(iter(test.loader(data.in_order(len(test), 100))))
    assert x.shape == (30, 3, 16, 16) and y.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert abs(float(x.mean())) < 3


def test_batches_are_a_function_of_seed_and_epoch_whatever_the_workers_and_ranks(folder):
    train = data.open_split(f"imagefolder:{folder}", "train", image_size=16, seed=3)
    order = data.batches(len(train), 10, 3, epoch=1)
    one = list(train.loader(order, workers=0, epoch=1))
    two = list(train.loader(order, workers=2, epoch=1))
    for (xa, ya), (xb, yb) in zip(one, two, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    halves = [list(train.loader([Context(r, 2).shard(i) for i in order], epoch=1)) for r in range(2)]
    for (x, y), (x0, y0), (x1, y1) in zip(one, *halves):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    other_epoch = next(iter(train.loader(order[:1], epoch=2)))[0]
    assert not torch.equal(other_epoch, one[0][0])  # augmentation is drawn per (seed, epoch, index)


def test_train_pack_unpack_eval_end_to_end(runner, folder, tmp_path):
    ds = f"imagefolder:{folder}"
    out = tmp_path / "m.pt"
    res = run_cli(
        runner,
        "train",
        "--method",
        "prune",
        "--arch",
        "conv2",
        "--width",
        "0.125",
        "--dataset",
        ds,
        "--image-size",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--workers",
        "1",
        "--device",
        "cpu",
        "-o",
        out,
        "-q",
    )
    assert res.exit_code == 0, res.output
    desc, metrics = runfile.load(out)
    assert desc.spec.model.in_shape == (3, 16, 16) and desc.spec.model.num_classes == 3
    assert run_cli(runner, "pack", out, "-o", tmp_path / "m.cpk").exit_code == 0
    record = load_description(tmp_path / "m.cpk").data  # the folder names travel in the .cpk's data contract
    assert record.classes == CLASSES and record.dataset == ds and record.mean == (0.485, 0.456, 0.406)
    assert run_cli(runner, "unpack", tmp_path / "m.cpk", "--onnx", tmp_path / "m.onnx").exit_code == 0
    res = run_cli(runner, "eval", tmp_path / "m.onnx", "--dataset", ds, "--json")
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output)
    assert ev["examples"] == 30
    assert ev["correct"] == round(metrics[-1]["test_acc"] * 30)  # onnxruntime agrees with PyTorch


def test_a_missing_folder_is_a_data_error(runner, tmp_path):
    res = run_cli(
        runner, "train", "--dataset", f"imagefolder:{tmp_path / 'nope'}", "--device", "cpu", "-o", tmp_path / "m.pt"
    )
    assert res.exit_code == 5 and "no train/ folder" in res.output and len(res.output.strip().splitlines()) == 1
