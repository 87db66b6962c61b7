"""Pack a ResNet-18 pruned with torch.nn.utils.prune and compare its size with what PyTorch saves.

torch.nn.utils.prune keeps ``weight_orig`` + ``weight_mask`` per pruned tensor, so a pruned checkpoint is
about twice the dense one; ``prune.remove`` leaves dense tensors full of zeros (pytorch issue #32928).
connpack stores each mask entropy coded and only the kept values.

    python examples/pack_torch_pruned_resnet18.py                       # ImageNet shape, 90% pruned
    python examples/pack_torch_pruned_resnet18.py --image-size 64 --num-classes 10 --zstd-level 3 --codec ans

No pretrained weights are downloaded: the network is torchvision's random initialisation (weights=None),
pruned by global magnitude; sizes depend on the sparsity and the value type, not on training.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torchvision
import zstandard
from torch import nn
from torch.nn.utils import prune

import connpack
from connpack import formats

# |output - reference| <= TOL * max|reference|: 8 units of roundoff of the stored value type
TOLERANCE = {"float32": 0.0, "float16": 8 * 2.0**-11, "bfloat16": 8 * 2.0**-8}


def saved_size(obj) -> tuple[int, bytes]:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return len(buf.getvalue()), buf.getvalue()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amount", type=float, default=0.9, help="fraction of conv/linear weights pruned (global L1)")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=224, help="input height = width (the spec's in_shape)")
    ap.add_argument("--batch", type=int, default=4, help="images in the output check")
    ap.add_argument("--codec", default="auto", help="mask codec (auto tries all; ans is much faster)")
    ap.add_argument("--zstd-level", type=int, default=19, help="zstd level of the state_dict comparison")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the files here (default: a temp dir)")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="connpack-resnet18-"))
    out.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.resnet18(weights=None, num_classes=args.num_classes).eval()
    layers = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=args.amount)
    n_weights = sum(m.weight.numel() for m, _ in layers)
    kept = sum(int(m.weight_mask.sum()) for m, _ in layers)

    shape = (3, args.image_size, args.image_size)
    x = torch.randn(args.batch, *shape)
    with torch.no_grad():
        reference = model(x)

    sizes: dict[str, int] = {}
    sizes["torch.save, pruned (weight_orig + weight_mask)"], _ = saved_size(model.state_dict())
    cpk = {}
    for values in ("float32", "float16"):
        cpk[values] = out / f"resnet18-{values}.cpk"
        t0 = time.perf_counter()
        sizes[f"connpack .cpk, {values} values"] = connpack.pack(
            model, cpk[values], arch="torchvision:resnet18", values=values, codec=args.codec, in_shape=shape
        )
        print(f"packed {cpk[values].name} in {time.perf_counter() - t0:.1f} s")
    for m, name in layers:
        prune.remove(m, name)
    sizes["torch.save, after prune.remove (zeros)"], blob = saved_size(model.state_dict())
    sizes[f"zstd-{args.zstd_level} of that torch.save"] = len(
        zstandard.ZstdCompressor(level=args.zstd_level).compress(blob)
    )

    errors = {}
    for values, path in cpk.items():
        with torch.no_grad():
            got = connpack.load(path)(x)
        errors[values] = float((got - reference).abs().max())
        bound = TOLERANCE[values] * float(reference.abs().max())
        assert errors[values] <= bound, (values, errors[values], bound)
        if values == "float32":
            assert torch.equal(got, reference), "float32 values must give the same outputs exactly"

    onnx_path = out / "resnet18.onnx"
    connpack.export_onnx(cpk["float32"], onnx_path)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"input": x.numpy()})[0]
    errors["onnxruntime (dense, float32)"] = float(np.abs(onnx_out - reference.numpy()).max())
    assert np.array_equal(onnx_out.argmax(1), reference.numpy().argmax(1))

    # where the bytes go (`connpack report` gives the full table; it also re-measures zstd-19, which is slow)
    sections = formats.inspect_sections(cpk["float32"].read_bytes())
    mask_bits = 8 * sum(s.coded_bytes for s in sections if s.ones is not None)
    value_bits = 8 * sum(s.coded_bytes for s in sections if s.name.endswith(":v"))

    print(
        f"ResNet-18 ({args.num_classes} classes), {n_weights:,} conv/linear weights, {kept:,} kept "
        f"({kept / n_weights:.2%}), input {shape}"
    )
    base = sizes["torch.save, after prune.remove (zeros)"]
    for what, size in sizes.items():
        print(f"  {what:<48} {size:>12,} bytes  {base / size:6.2f}x smaller than torch.save after remove")
    print(
        f"  float32 .cpk: masks {mask_bits / 8:,.0f} bytes ({mask_bits / n_weights:.3f} bits/weight), "
        f"kept values {value_bits / 8:,.0f} bytes — the values dominate"
    )
    print(
        "max |output - original| after unpack: "
        + ", ".join(f"{k} {v:.3g}" for k, v in errors.items())
        + f"  (max |output| {float(reference.abs().max()):.3g}; float16 tolerance {TOLERANCE['float16']:.2g} x that)"
    )
    return {"sizes": sizes, "errors": errors, "kept": kept, "weights": n_weights}


if __name__ == "__main__":
    main()
