"""The network layer of .cpk (formats/cpk.md section 7): golden packed networks, one per representation,
decoded to the same tensors by connpack and by the independent reader (which regenerates the weights with its
own Philox); the tensor index; one negative test per network-layer check, through the library and the CLI.

Regenerate the vectors on purpose with ``python -m tests.test_golden_networks --regen`` (or CPK_REGEN=1 pytest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from connpack import errors as E
from connpack import formats, rng
from connpack.contract import DataContract
from connpack import values as vq
from connpack.description import Description, TensorCode
from connpack.packing import from_container, pack, to_container, unpack
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from tests import independent_reader as ir
from tests.conftest import run_cli
from tests.test_formats import check_pinned, libzstd_version, zstd_dependent

VECTORS = Path(__file__).resolve().parents[1] / "formats" / "vectors"
MANIFEST = VECTORS / "networks.json"
SHAPES = {"fc1.weight": (15, 64), "fc2.weight": (5, 15), "fc3.weight": (10, 5)}  # lenet300, width 0.05, 1x8x8
QUANT_SHAPES = {"fc1.weight": (75, 64), "fc2.weight": (25, 75), "fc3.weight": (10, 25)}  # width 0.25


# --------------------------------------------------------------------------- the golden networks
def _pattern(shape, a: int, b: int, m: int, r: int = 0) -> np.ndarray:
    """Deterministic bits without any RNG: ((a*i + b*j + i*j) mod m) <= r over the (out, in) indices."""
    i, j = np.indices(shape)
    return ((a * i + b * j + i * j) % m) <= r


def _model(**kw) -> ModelSpec:
    return ModelSpec(**{"arch": "lenet300", "in_shape": (1, 8, 8), "width": 0.05, **kw})


def golden_networks() -> dict[str, tuple[Description, str]]:
    """name -> (Description, value dtype); one per representation, built from fixed patterns."""
    out = {}
    # mask (pruning): signed constant weights, fc1 drawn from a normal (inits override), seed above 2**32
    spec = NetworkSpec(
        model=_model(),
        rng=RngSpec(seed=2**40 + 12345),
        method="prune",
        init=InitSpec(p_positive=0.3),
        inits={"fc1.weight": InitSpec(dist="kaiming_normal")},
    )
    out["mask"] = (
        Description(spec, {n: TensorCode("mask", s, bits=_pattern(s, 3, 5, 4, 1)) for n, s in SHAPES.items()}),
        "float32",
    )
    # flip (sign flipping): signed constant weights
    spec = NetworkSpec(model=_model(), rng=RngSpec(seed=7), method="flip")
    out["flip"] = (
        Description(spec, {n: TensorCode("flip", s, bits=_pattern(s, 1, 2, 7)) for n, s in SHAPES.items()}),
        "float32",
    )
    # ternary (ASNI centroids): mask + signs of the kept weights + (c_neg, c_pos); fc3 stays dense
    tensors = {}
    for k, (n, s) in enumerate(list(SHAPES.items())[:2]):
        bits = _pattern(s, 2, 3, 3)
        signs = (np.arange(int(bits.sum())) * (k + 5)) % 3 != 0
        tensors[n] = TensorCode("ternary", s, bits=bits, signs=signs, centroids=(-0.375 - k, 0.5 + k))
    tensors["fc3.weight"] = TensorCode(
        "dense", SHAPES["fc3.weight"], values=(np.arange(50, dtype=np.float32).reshape(10, 5) - 25) / 64
    )
    spec = NetworkSpec(model=_model(), init=InitSpec(dist="kaiming_normal"), method="asni")
    out["ternary"] = (Description(spec, tensors), "float32")
    # values (trained sparse weights, stored as float16) with biases
    tensors, dense = {}, {}
    for n, s in SHAPES.items():
        bits = _pattern(s, 1, 1, 5, 1)
        kept = (np.arange(int(bits.sum()), dtype=np.float32) % 33 - 16) / 16  # exact in float16
        tensors[n] = TensorCode("values", s, bits=bits, values=kept)
        dense[n.replace("weight", "bias")] = np.linspace(-0.5, 0.5, s[0], dtype=np.float32)
    spec = NetworkSpec(model=_model(bias=True), method="imp")
    out["values"] = (Description(spec, tensors, dense), "float16")
    # imp (magnitude pruning rewound to the init): values over kaiming-normal weights; the mask keeps mostly the
    # largest |G|, so the writer stores it in |G| order ("o": "g")
    spec = NetworkSpec(model=_model(), rng=RngSpec(seed=3), init=InitSpec(dist="kaiming_normal"), method="imp")
    tensors = {}
    for i, (n, s) in enumerate(SHAPES.items()):
        a = np.abs(rng.generate(spec.init_for(n), 3, i, s))
        bits = (a >= np.sort(a.ravel())[a.size * 7 // 10]) ^ _pattern(s, 1, 3, 11)  # top 30% by |G|, ~9% flipped
        tensors[n] = TensorCode(
            "values", s, bits=bits, values=(np.arange(int(bits.sum()), dtype=np.float32) % 7 - 3) / 4
        )
    out["imp"] = (Description(spec, tensors), "float32")
    # quantised values (cpk.md 7.2.1): fc1 float16 values (the planes codec), fc2 one step plus the seed
    # prediction a * G, fc3 per-channel steps (indices coded with qans)
    spec = NetworkSpec(
        model=_model(width=0.25), rng=RngSpec(seed=11), init=InitSpec(dist="kaiming_normal"), method="imp"
    )
    tensors, plan = {}, {}
    for i, (n, s) in enumerate(QUANT_SHAPES.items()):
        g = rng.generate(spec.init_for(n), 11, i, s)
        bits = np.abs(g) >= np.sort(np.abs(g).ravel())[g.size // 2]
        wiggle = ((np.arange(int(bits.sum())) * 37) % 101 - 50).astype(np.float32) / 400
        tensors[n] = TensorCode("values", s, bits=bits, values=(g[bits] * (1 + wiggle)).astype(np.float32))
    steps = (np.arange(QUANT_SHAPES["fc3.weight"][0], dtype=np.float32) % 4 + 1) / 64
    plan = {
        "fc1.weight": "float16",
        "fc2.weight": vq.Quant(np.float32([0.015625]), a=1.0625),
        "fc3.weight": vq.Quant(steps),
    }
    out["quant"] = (Description(spec, tensors), plan)
    # dense fallback (baseline training) with affine batch norm
    tensors = {
        n: TensorCode("dense", s, values=(np.arange(np.prod(s), dtype=np.float32).reshape(s) % 17 - 8) / 32)
        for n, s in SHAPES.items()
    }
    dense = {}
    for k, c in ((1, 15), (2, 5)):
        dense |= {
            f"bn{k}.weight": np.full(c, 1.5, np.float32),
            f"bn{k}.bias": np.linspace(-1, 1, c, dtype=np.float32),
            f"bn{k}.running_mean": np.arange(c, dtype=np.float32) / 8,
            f"bn{k}.running_var": np.ones(c, np.float32) * 2,
        }
    spec = NetworkSpec(model=_model(batchnorm="affine"), method="baseline")
    out["dense"] = (Description(spec, tensors, dense), "float32")
    # the data contract (cpk.md 7.9): the flip network with its dataset, input preparation and class names
    flip = out["flip"][0]
    record = DataContract(
        "fashion-mnist",
        (0.286,),
        (0.353,),
        (0.0, 1.0),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    )
    out["data"] = (Description(flip.spec, flip.tensors, data=record), "float32")
    return out


def expected_tensors(desc: Description, values) -> dict[str, np.ndarray]:
    """What a reader must decode for ``desc`` packed with ``values``: the values cast to their stored type,
    or quantised and dequantised as cpk.md 7.2.1 says (connpack.values)."""
    out = desc.state_dict()
    kept = {k.name: k for k in vq.kept_tensors(desc, predict=True)}
    for name, code in desc.tensors.items():
        how = values.get(name, "float32") if isinstance(values, dict) else values
        if code.kind != "values" or how == "float32":
            continue
        w = np.zeros(code.shape, np.float32)
        if isinstance(how, vq.Quant):
            w[code.bits] = vq.decoded(kept[name], how)
        else:
            w[code.bits] = code.values.astype(how).astype(np.float32)
        out[name] = w
    return out


def tensor_sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


def regenerate(directory: Path = VECTORS, only: set[str] | None = None) -> None:
    """Write net_<name>.cpk and networks.json (file sha256, zstd dependence, sha256 of every unpacked tensor,
    the data record). ``only``: write just these networks, keeping the other entries (vectors of an earlier
    version are never rewritten)."""
    manifest = json.loads(MANIFEST.read_text()) if only else {"zstd": libzstd_version(), "files": {}}
    for name, (desc, values) in golden_networks().items():
        if only and name not in only:
            continue
        path = directory / f"net_{name}.cpk"
        pack(desc, path, values=values)
        data = path.read_bytes()
        back = unpack(path)
        tensors = back.state_dict()
        manifest["files"][path.name] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "zstd": zstd_dependent(data),
            "values": values if isinstance(values, str) else "quantised",
            "tensors": {k: tensor_sha(v) for k, v in sorted(tensors.items())},
        }
        if back.data is not None:
            manifest["files"][path.name]["data"] = back.data.to_meta()
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def manifest() -> dict:
    if os.environ.get("CPK_REGEN"):
        regenerate()
    return json.loads(MANIFEST.read_text())


# --------------------------------------------------------------------------- golden vectors
def test_golden_networks_pinned(manifest):
    nets = golden_networks()
    assert set(manifest["files"]) == {f"net_{n}.cpk" for n in nets}
    for name, (desc, values) in nets.items():
        fname = f"net_{name}.cpk"
        info = manifest["files"][fname]
        data = (VECTORS / fname).read_bytes()
        check_pinned(fname, info, data, formats.encode(to_container(desc, values)), manifest["zstd"])
        back = unpack(VECTORS / fname)
        assert list(back.tensors) == list(
            QUANT_SHAPES if name == "quant" else SHAPES
        )  # tensor index order, whatever the header's key order
        got = back.state_dict()
        assert {k: tensor_sha(v) for k, v in got.items()} == info["tensors"], fname
        want = expected_tensors(desc, values)  # the Description that was packed gives the same tensors
        for k, v in got.items():
            assert v.dtype == np.float32 and np.array_equal(v, want[k].astype(np.float32)), (fname, k)


def test_every_representation_is_covered(manifest):
    kinds = set()
    for fname in manifest["files"]:
        meta = formats.read(VECTORS / fname).meta
        kinds |= {e["k"] for e in meta["t"].values()}
    assert kinds == {"mask", "flip", "ternary", "values", "dense"}
    orders = {e.get("o") for e in formats.read(VECTORS / "net_imp.cpk").meta["t"].values()}
    assert "g" in orders  # a section stored in |G| order


def test_independent_reader_rebuilds_the_same_tensors(manifest):
    for fname, info in manifest["files"].items():
        tensors = ir.read_network((VECTORS / fname).read_bytes())
        assert {k: tensor_sha(v) for k, v in tensors.items()} == info["tensors"], fname


def test_data_record_read_by_both_readers(manifest):
    """net_data.cpk carries a data contract (cpk.md 7.9); the vectors of the earlier version have none, and
    decode as before (the record takes no part in the rebuild: net_data's tensors are net_flip's)."""
    for fname, info in manifest["files"].items():
        back = unpack(VECTORS / fname)
        want = info.get("data")
        assert (None if back.data is None else back.data.to_meta()) == want, fname
        got = ir.read_data((VECTORS / fname).read_bytes())
        assert (None if got is None else {k: v for k, v in got.items() if k not in ("shape", "num_classes")}) == want
    assert [n for n, i in manifest["files"].items() if "data" in i] == ["net_data.cpk"]
    assert manifest["files"]["net_data.cpk"]["tensors"] == manifest["files"]["net_flip.cpk"]["tensors"]
    got = ir.read_data((VECTORS / "net_data.cpk").read_bytes())
    assert got["shape"] == [1, 8, 8] and got["num_classes"] == 10 and got["classes"][9] == "Ankle boot"
    x = np.linspace(0, 1, 2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    import torch

    from connpack import data as cdata

    want = cdata.normalise(torch.from_numpy(x), unpack(VECTORS / "net_data.cpk").data.mean, got["std"]).numpy()
    assert np.array_equal(ir.prepare(got, x), want)  # the same float32 arithmetic, bit for bit


BAD_DATA = {
    "unknown data field": (lambda d: d.update(labels=["a"]), E.UnknownFieldError),
    "no dataset": (lambda d: d.pop("dataset"), E.FormatError),
    "dataset not a string": (lambda d: d.update(dataset=3), E.FormatError),
    "empty dataset": (lambda d: d.update(dataset=""), E.FormatError),
    "control character": (lambda d: d.update(dataset="mnist\x1b[31m"), E.FormatError),
    "no mean": (lambda d: d.pop("mean"), E.FormatError),
    "mean per channel": (lambda d: d.update(mean=[0.1, 0.2]), E.FormatError),
    "bool mean": (lambda d: d.update(mean=[True]), E.FormatError),
    "zero std": (lambda d: d.update(std=[0.0]), E.FormatError),
    "negative std": (lambda d: d.update(std=[-1]), E.FormatError),
    "range reversed": (lambda d: d.update(range=[1.0, 0.0]), E.FormatError),
    "range of three": (lambda d: d.update(range=[0, 1, 2]), E.FormatError),
    "classes count": (lambda d: d.update(classes=["a", "b"]), E.FormatError),
    "classes not strings": (lambda d: d.update(classes=list(range(10))), E.FormatError),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_record_is_refused(case):
    fn, err = BAD_DATA[case]
    c = _meta_edit(lambda m: fn(m["data"]), "data")
    with pytest.raises(err):
        from_container(c)
    with pytest.raises(ValueError):  # the second reader, from cpk.md 7.9 alone, refuses it too
        ir.read_data(formats.encode(c))


def test_data_record_round_trip_and_optional_fields(tmp_path):
    desc, _ = golden_networks()["data"]
    for record in (desc.data, DataContract("my-scans", (-1.5,), (2.0,))):  # no range, no classes
        pack(Description(desc.spec, desc.tensors, data=record), tmp_path / "m.cpk")
        assert unpack(tmp_path / "m.cpk").data == record
        meta = formats.read(tmp_path / "m.cpk").meta
        assert meta["data"] == record.to_meta()
        from connpack.contract import contract_of

        assert contract_of(meta) == record
    with pytest.raises(E.FormatError, match="meta.data must be a JSON object"):
        from_container(_meta_edit(lambda m: m.update(data=["fashion-mnist"]), "data"))
    with pytest.raises(E.SpecError):  # a writer refuses a record that does not fit the network
        pack(Description(desc.spec, desc.tensors, data=DataContract("x", (0, 0, 0), (1, 1, 1))), tmp_path / "b.cpk")
    assert not (tmp_path / "b.cpk").exists()


def test_independent_philox_and_transforms_match_connpack():
    """The second reader's RNG (written from cpk.md 7.4) against connpack.rng on a few thousand draws."""
    seed, index = 2**40 + 12345, 3
    assert np.array_equal(ir.philox_words(seed, index, 1001), rng.random_words(seed, index, 1001))
    np.testing.assert_array_equal(ir.normals(seed, index, 777), rng.normal_f64(seed, index, (777,)))
    for init, shape in [
        (InitSpec(), (6, 4, 3, 3)),
        (InitSpec(dist="kaiming_normal", scale=0.5), (9, 7)),
        (InitSpec(dist="xavier_normal"), (5, 5)),
        (InitSpec(dist="kaiming_uniform", gain=1.0), (4, 9)),
        (InitSpec(p_positive=0.9), (3, 17)),
        (InitSpec(p_positive=2**-24), (64, 64)),
        (InitSpec(p_positive=0.5 + 2**-25), (64, 64)),
        (InitSpec(p_positive=1.0), (2, 5)),
    ]:
        want = rng.generate(init, seed, index, shape)
        got = ir.generate(init.to_dict(), seed, index, shape)
        assert got.dtype == np.float32 and np.array_equal(got, want), init


# --------------------------------------------------------------------------- the tensor index
def _random_masks(spec: NetworkSpec, seed: int = 0) -> Description:
    from connpack.packing import architecture_shapes

    names, shapes = architecture_shapes(spec)
    g = np.random.default_rng(seed)
    dense = {k: g.standard_normal(s).astype(np.float32) for k, s in shapes.items() if k not in names}
    return Description(spec, {n: TensorCode("mask", shapes[n], bits=g.random(shapes[n]) < 0.5) for n in names}, dense)


@pytest.mark.parametrize("arch,width", [("resnet18", 0.125), ("vgg13", 0.125), ("conv6", 0.125)])
def test_tensor_index_is_model_order_not_name_order(tmp_path, arch, width):
    """resnet18's fc.weight sorts before layer1..., vgg13's '10.weight' before '3.weight': the header's sorted
    keys must not change which RNG stream a tensor uses."""
    spec = NetworkSpec(model=ModelSpec(arch=arch, in_shape=(3, 32, 32), width=width), method="prune")
    desc = _random_masks(spec)
    pack(desc, tmp_path / "m.cpk", codec="raw")
    back = unpack(tmp_path / "m.cpk")
    assert list(back.tensors) == list(desc.tensors)
    meta = formats.read(tmp_path / "m.cpk").meta
    assert [meta["t"][n]["i"] for n in desc.tensors] == list(range(len(desc.tensors)))
    if arch != "conv6":  # conv6's names happen to sort in model order; the others do not
        assert sorted(desc.tensors) != list(desc.tensors)
    want, got = desc.state_dict(), back.state_dict()
    assert all(np.array_equal(want[k], got[k]) for k in want)


# --------------------------------------------------------------------------- network-layer validation
def _golden_container(name: str = "flip") -> formats.Container:
    return formats.read(VECTORS / f"net_{name}.cpk")


def _write(path: Path, c: formats.Container) -> Path:
    path.write_bytes(formats.encode(c))
    return path


def _meta_edit(fn, name: str = "flip") -> formats.Container:
    c = _golden_container(name)
    meta = json.loads(json.dumps(c.meta))
    fn(meta)
    return formats.Container(meta, c.arrays)


BAD_META = {
    "unknown top field": (lambda m: m.update(x=1), E.UnknownFieldError),
    "unknown tensor field": (lambda m: m["t"]["fc1.weight"].update(q=0), E.UnknownFieldError),
    "unknown spec field": (lambda m: m["spec"]["model"].update(depth=3), E.UnknownFieldError),
    "unknown init field": (lambda m: m["spec"].setdefault("init", {}).update(mode="x"), E.UnknownFieldError),
    "missing t": (lambda m: m.pop("t"), E.FormatError),
    "duplicate index": (lambda m: m["t"]["fc2.weight"].update(i=0), E.FormatError),
    "index gap": (lambda m: m["t"]["fc3.weight"].update(i=5), E.FormatError),
    "bool index": (lambda m: m["t"]["fc1.weight"].update(i=False), E.FormatError),
    "unknown kind": (lambda m: m["t"]["fc1.weight"].update(k="lut"), E.FormatError),
    "no hash": (lambda m: m["t"]["fc1.weight"].pop("h"), E.FormatError),
    "bad hash": (lambda m: m["t"]["fc1.weight"].update(h="XYZ"), E.FormatError),
    "centroids on flip": (lambda m: m["t"]["fc1.weight"].update(c=[1, 2]), E.FormatError),
    "unknown order": (lambda m: m["t"]["fc1.weight"].update(o="h"), E.FormatError),
}


@pytest.mark.parametrize("case", list(BAD_META))
def test_bad_meta_is_refused(case):
    fn, err = BAD_META[case]
    with pytest.raises(err):
        from_container(_meta_edit(fn))


def test_section_checks():
    c = _golden_container("ternary")
    arrays = dict(c.arrays)
    arrays["fc1.weight:s"] = arrays["fc1.weight:s"][:-1]  # one sign fewer than kept weights
    with pytest.raises(E.ShapeMismatchError):
        from_container(formats.Container(c.meta, arrays))
    arrays = dict(c.arrays, **{"fc9.weight:v": np.zeros(3, np.float32)})  # a section no tensor claims
    with pytest.raises(E.FormatError):
        from_container(formats.Container(c.meta, arrays))
    arrays = dict(c.arrays, **{"fc1.weight": c.arrays["fc1.weight"].astype(np.float32)})  # bits stored as floats
    with pytest.raises(E.FormatError):
        from_container(formats.Container(c.meta, arrays))
    arrays = dict(c.arrays)
    del arrays["fc3.weight"]
    with pytest.raises(E.FormatError):
        from_container(formats.Container(c.meta, arrays))


def _shape_mismatch() -> formats.Container:  # the file says width 0.1: fc1 would be 30 x 64, its section is 15 x 64
    return _meta_edit(lambda m: m["spec"]["model"].update(width=0.1))


def _hash_mismatch() -> formats.Container:  # another seed regenerates other weights than the ones hashed
    return _meta_edit(lambda m: m["spec"]["rng"].update(seed=8))


def test_shape_mismatch_with_the_architecture(tmp_path):
    path = _write(tmp_path / "bad.cpk", _shape_mismatch())
    with pytest.raises(E.ShapeMismatchError):
        unpack(path)
    _write(
        tmp_path / "order.cpk",
        _meta_edit(lambda m: (m["t"]["fc1.weight"].update(i=1), m["t"]["fc2.weight"].update(i=0))),
    )
    with pytest.raises(E.ShapeMismatchError):  # tensor 0 must be the architecture's first layer
        unpack(tmp_path / "order.cpk")


def test_regenerated_weight_hash_mismatch(tmp_path):
    desc = unpack(_write(tmp_path / "bad.cpk", _hash_mismatch()))
    with pytest.raises(E.WeightHashError):
        desc.state_dict()
    desc.state_dict(verify=False)  # the check, not the decoding, refuses it


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: _meta_edit(lambda m: m["t"]["fc1.weight"].update(q=0)), "unknown field"),
        (_shape_mismatch, "shape"),
        (_hash_mismatch, "does not match its recorded hash"),
    ],
)
def test_network_errors_through_the_cli(runner, tmp_path, make, needle):
    from tests.test_cli import _one_line_error

    path = _write(tmp_path / "bad.cpk", make())
    r = run_cli(runner, "unpack", path, "--pt", tmp_path / "out.pt")
    _one_line_error(r, E.FormatError.exit_code)
    assert needle in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.cpk"]  # no output, no temp file


def test_magnitude_order_pays_on_imp_like_masks(tmp_path):
    """Masks that keep the weights large at init are stored in |G| order, at well under the order-0 bound."""
    spec = NetworkSpec(model=ModelSpec(arch="lenet300"), init=InitSpec(dist="kaiming_normal"), method="imp")
    tensors = {}
    for i, (n, s) in enumerate({"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}.items()):
        a = np.abs(rng.generate(spec.init_for(n), 0, i, s))
        noise = rng.uniform(0, i, s, stream=rng.STREAM_DATA) < 0.05
        bits = (a >= np.sort(a.ravel())[a.size * 9 // 10]) ^ noise
        tensors[n] = TensorCode("values", s, bits=bits, values=np.ones(int(bits.sum()), np.float32))
    desc = Description(spec, tensors)
    pack(desc, tmp_path / "m.cpk")
    meta = formats.read(tmp_path / "m.cpk").meta
    assert meta["t"]["fc1.weight"]["o"] == "g"
    info = {i.name: i for i in formats.inspect_sections((tmp_path / "m.cpk").read_bytes())}
    fc1 = info["fc1.weight"]
    assert fc1.coded_bytes * 8 < 0.75 * fc1.bound_bits  # the bound of the bits in either order
    back = unpack(tmp_path / "m.cpk")
    assert all(np.array_equal(back.tensors[n].bits, c.bits) for n, c in tensors.items())
    assert all(
        np.array_equal(v, ir.read_network((tmp_path / "m.cpk").read_bytes())[k]) for k, v in back.state_dict().items()
    )


def test_pack_records_missing_hashes(tmp_path):
    desc, _ = golden_networks()["flip"]
    assert desc.weight_hashes == {}
    pack(desc, tmp_path / "m.cpk")
    meta = formats.read(tmp_path / "m.cpk").meta
    gen = desc.generated()
    assert {n: e["h"] for n, e in meta["t"].items()} == {n: rng.tensor_hash(w) for n, w in gen.items()}


# --------------------------------------------------------------------------- report --plot
def test_report_plot(runner, tmp_path):
    png = tmp_path / "bits.png"
    r = run_cli(runner, "report", VECTORS / "net_ternary.cpk", "--plot", png)
    assert r.exit_code == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in r.stdout
    r = run_cli(runner, "report", VECTORS / "net_mask.cpk", "--json", "--plot", png)
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"]  # stdout stays pure JSON


def test_report_plot_without_matplotlib(runner, tmp_path, monkeypatch):
    import sys

    from tests.test_cli import _one_line_error

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = run_cli(runner, "report", VECTORS / "net_flip.cpk", "--plot", tmp_path / "bits.png")
    _one_line_error(r, E.SpecError.exit_code)
    assert "pip install 'connpack[plot]'" in r.stderr
    assert not (tmp_path / "bits.png").exists()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regen", action="store_true", help="rewrite formats/vectors/net_*.cpk and networks.json")
    ap.add_argument("--only", nargs="*", help="rewrite only these networks (e.g. data), keep the others' entries")
    args = ap.parse_args()
    if args.regen:
        regenerate(only=set(args.only) if args.only else None)
        print(f"wrote {MANIFEST}")
