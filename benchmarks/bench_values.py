"""Bytes against accuracy / argmax agreement / output error for stored values (issue 12), one table per network.

    python benchmarks/bench_values.py --lenet runs/imp/model.pt          # connpack train --method imp
    python benchmarks/bench_values.py --resnet resnet18_p90.pt           # a state_dict (see --make-resnet)
    python benchmarks/bench_values.py --make-resnet resnet18_p90.pt      # torchvision ResNet-18, L1 90% pruned

LeNet rows: bytes, test accuracy, argmax agreement with the float32 network on the 10,000 MNIST test images.
ResNet rows: bytes, relative L2 error of the logits on a fixed random batch (torch.manual_seed(0), 8 images of
3x224x224: not the probe batch the --max-error search uses), encode time (the .cpk written from the network's
description with the chosen steps) and decode time (.cpk read, values dequantised, weights materialised).
"today" rows: the same float16/bfloat16 values written with raw/zstd only (the writer before the planes codec);
":v bytes": the value sections alone (mask, biases and header excluded).
NNCodec 2.1.3 is not installed here; its figures from the issue are printed as the reference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from connpack import api, formats, packing
from connpack import values as vq

NNCODEC = {
    "lenet": "28,783 B (qp -16, no DQ; 96.84%, 99.16% agreement)",
    "resnet": "1,674,954 B at ~0.9% relative L2 output error",
}


def _today(desc, values: str, path: Path) -> int:
    """The file size without the value codecs (planes/qans): the writer before issue 12."""
    c = packing.to_container(desc, values)
    data = formats.encode(formats.Container(c.meta, c.arrays))
    path.write_bytes(data)
    return len(data)


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def _rows(desc, out: Path, settings):
    """(label, file bytes, encode s, decode s, restored module) per setting; a setting is (label, kwargs)."""
    from connpack.exporters.module import to_module

    for label, kw in settings:
        path = out / (label.replace(" ", "_").replace("/", "_") + ".cpk")
        if kw is None:  # today's writer
            size, t_enc = _today(desc, label.split()[0], path), float("nan")
        else:
            size, choice = api.pack_values(desc, path, **kw)
            plan = (
                choice.plan
                if choice
                else (
                    vq.plan_bits(vq.kept_tensors(desc), vq.parse(kw["values"])[1])
                    if kw.get("values", "float32")[0] == "q"
                    else kw.get("values", "float32")
                )
            )
            t0 = time.perf_counter()  # encode: the description with its chosen steps to a file
            size = packing.pack(desc, path, values=plan)
            t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = packing.unpack(path)
        back.state_dict()
        t_dec = time.perf_counter() - t0
        vbytes = sum(sec.coded_bytes for sec in formats.inspect_sections(path.read_bytes()) if sec.name.endswith(":v"))
        yield label, size, vbytes, t_enc, t_dec, to_module(back), (choice.reached if kw and choice else None)


def lenet(path: Path, out: Path, errors: list[float]) -> None:
    from connpack import data
    from connpack.exporters.module import to_module

    desc = api.describe(path)
    x, y = data.load("mnist", "test")
    ref = _logits(to_module(desc), x).argmax(1)
    settings = [("float16 today", None), ("bfloat16 today", None)]
    settings += [(v, {"values": v}) for v in ("float32", "float16", "bfloat16", "q8", "q6", "q4")]
    settings += [(f"max-error {e:g}", {"max_error": e}) for e in errors]
    settings += [("max-accuracy-drop 0.1", {"max_accuracy_drop": 0.1})]
    print(f"IMP LeNet-300-100 ({path}); float32 test accuracy {(ref == y).float().mean() * 100:.2f}%")
    print(f"{'setting':<24}{'bytes':>10}{':v bytes':>10}{'accuracy':>10}{'agreement':>11}{'decode s':>10}  reached")
    for label, size, vb, _te, td, model, reached in _rows(desc, out, settings):
        pred = _logits(model, x).argmax(1)
        acc, agree = (pred == y).float().mean() * 100, (pred == ref).float().mean() * 100
        print(f"{label:<24}{size:>10,}{vb:>10,}{acc:>9.2f}%{agree:>10.2f}%{td:>10.3f}  {reached or ''}", flush=True)
    print(f"{'NNCodec (issue 12)':<24}{NNCODEC['lenet']}")


def make_resnet(path: Path) -> None:
    import torchvision
    from torch import nn
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    layers = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.9)
    for m, _ in layers:
        prune.remove(m, "weight")
    torch.save(model.state_dict(), path)


def resnet(path: Path, out: Path, errors: list[float]) -> None:
    from connpack.exporters.module import to_module

    desc = api.describe(path, arch="torchvision:resnet18")
    torch.manual_seed(0)
    x = torch.randn(8, 3, 224, 224)
    ref = _logits(to_module(desc), x).double()
    settings = [("float16 today", None), ("bfloat16 today", None)]
    settings += [(v, {"values": v}) for v in ("float16", "bfloat16", "q8", "q6")]
    settings += [(f"max-error {e:g}", {"max_error": e}) for e in errors]
    print(f"ResNet-18, 90% pruned (global L1), random init ({path})")
    print(
        f"{'setting':<24}{'bytes':>12}{':v bytes':>12}{'rel L2 out':>12}{'encode s':>10}{'decode s':>10}  reached (probe)"
    )
    for label, size, vb, te, td, model, reached in _rows(desc, out, settings):
        err = float((_logits(model, x).double() - ref).norm() / ref.norm())
        print(f"{label:<24}{size:>12,}{vb:>12,}{err:>11.3%}{te:>10.2f}{td:>10.2f}  {reached or ''}", flush=True)
    print(f"{'NNCodec (issue 12)':<24}{NNCODEC['resnet']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--lenet", type=Path, help="model.pt of `connpack train --method imp --iterations 3 --fraction 0.5 --epochs 1`"
    )
    ap.add_argument("--resnet", type=Path, help="state_dict of a pruned torchvision ResNet-18")
    ap.add_argument("--make-resnet", type=Path, help="write that state_dict here first")
    ap.add_argument("--lenet-errors", type=float, nargs="*", default=[0.02, 0.05, 0.08])
    ap.add_argument("--resnet-errors", type=float, nargs="*", default=[0.009])
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the .cpk files here (default: a temp dir)")
    args = ap.parse_args(argv)
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="connpack-values-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.make_resnet:
        make_resnet(args.make_resnet)
        args.resnet = args.resnet or args.make_resnet
    if args.lenet:
        lenet(args.lenet, out, args.lenet_errors)
    if args.resnet:
        resnet(args.resnet, out, args.resnet_errors)
    if not (args.lenet or args.resnet):
        ap.error("give --lenet and/or --resnet (or --make-resnet)")


if __name__ == "__main__":
    main()
