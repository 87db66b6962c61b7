"""Quantised and losslessly coded values (cpk.md 5.1, 5.2, 7.2.1): codecs, round trips, exact zeros, the
seed-predicted residual, targets, and the CLI's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from connpack import api, formats, rng, runfile
from connpack import errors as E
from connpack import values as vq
from connpack.description import Description, TensorCode
from connpack.packing import pack, to_container, unpack
from connpack.specs import InitSpec, ModelSpec, NetworkSpec, RngSpec
from tests import independent_reader as ir
from tests.conftest import run_cli

SHAPES = {"fc1.weight": (15, 784), "fc2.weight": (5, 15), "fc3.weight": (10, 5)}  # lenet300, width 0.05


def _net(method: str = "imp", drift: float = 0.05) -> Description:
    """Values trained away from a kaiming-normal init: v = 1.1 G + drift * noise on the top half of |G|."""
    spec = NetworkSpec(
        model=ModelSpec(arch="lenet300", width=0.05),
        rng=RngSpec(seed=3),
        init=InitSpec(dist="kaiming_normal"),
        method=method,
    )
    tensors = {}
    for i, (n, s) in enumerate(SHAPES.items()):
        g = rng.generate(spec.init_for(n), 3, i, s)
        bits = np.abs(g) >= np.median(np.abs(g))
        noise = rng.normal(9, i, (int(bits.sum()),))
        tensors[n] = TensorCode("values", s, bits=bits, values=(1.1 * g[bits] + drift * noise).astype(np.float32))
    return Description(spec, tensors)


# --------------------------------------------------------------------------- codecs
@pytest.mark.parametrize(
    "arr",
    [
        np.array([], dtype=np.int32),
        np.full(7, -3, dtype=np.int32),
        np.array([0, -1, 5, 5, -200, 60000], np.int32),
        np.random.default_rng(0).integers(-40, 40, 3000).astype(np.int32),
    ],
)
def test_qans_round_trip(arr):
    from connpack.formats.codecs import qans

    payload = qans.encode(arr)
    back = qans.decode(payload, np.dtype("<i4"), arr.shape)
    assert back.dtype == np.int32 and np.array_equal(back, arr)
    assert np.array_equal(ir._symbols(payload, arr.size), arr)
    data = formats.encode(formats.Container({}, {"q": arr}, codecs={"q": ("qans",)}))
    if arr.size == 3000:
        assert formats.inspect_sections(data)[0].codec == "qans"
    assert np.array_equal(formats.decode(data).arrays["q"], arr)
    assert np.array_equal(ir.read_cpk(data)[1]["q"], arr)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int32"])
def test_planes_round_trip(dtype):
    import ml_dtypes

    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    arr = (
        (rng.normal(1, 0, (4000,)) * 0.05).astype(dt)
        if dtype != "int32"
        else np.random.default_rng(2).integers(-9e5, 9e5, 4000).astype(np.int32)
    )
    data = formats.encode(formats.Container({}, {"v": arr}, codecs={"v": ("planes",)}))
    assert formats.inspect_sections(data)[0].codec == "planes"
    back = formats.decode(data).arrays["v"]
    assert back.dtype == arr.dtype and back.tobytes() == arr.tobytes()
    assert ir.read_cpk(data)[1]["v"].tobytes() == arr.tobytes()


def test_symbol_stream_refuses_bad_payloads():
    arr = np.random.default_rng(1).integers(-5, 5, 500).astype(np.int32)
    good = formats.encode(formats.Container({}, {"q": arr}, codecs={"q": ("qans",)}))
    c = formats.decode(good)
    assert np.array_equal(c.arrays["q"], arr)
    from connpack.formats.codecs import qans, symbols

    payload = qans.encode(arr)
    with pytest.raises(E.DecodedLengthError):  # one element fewer than the counts say
        symbols.decode(payload, arr.size - 1)
    with pytest.raises(E.DecodedLengthError):  # a stream cut short
        symbols.decode(payload[:-4], arr.size)
    with pytest.raises(E.DecodedLengthError):  # range outside the plane's bytes
        symbols.decode(symbols.encode(np.array([300, 301])), 2, 0, 255)


def test_new_codecs_only_where_asked():
    """Without a Container.codecs hint the writer keeps raw/zstd (files written before keep their bytes)."""
    arr = (rng.normal(1, 0, (4000,)) * 0.05).astype(np.float16)
    assert formats.inspect_sections(formats.encode(formats.Container({}, {"v": arr})))[0].codec in ("raw", "zstd")
    assert (
        formats.inspect_sections(
            formats.encode(formats.Container({}, {"b": np.arange(3, dtype=np.int32)}, codecs={"b": ("planes",)}))
        )[0].codec
        == "raw"
    )


# --------------------------------------------------------------------------- the network layer
def _weights(desc: Description) -> dict[str, np.ndarray]:
    return desc.state_dict()


@pytest.mark.parametrize("bits", [8, 4])
def test_quantised_round_trip_and_exact_zeros(tmp_path, bits):
    desc = _net()
    kept = vq.kept_tensors(desc)
    plan = vq.plan_bits(kept, bits)
    pack(desc, tmp_path / "q.cpk", values=plan)
    back = unpack(tmp_path / "q.cpk")
    got = _weights(back)
    theirs = ir.read_network((tmp_path / "q.cpk").read_bytes())
    for k in kept:
        code = desc.tensors[k.name]
        want = vq.decoded(k, plan[k.name])
        assert np.array_equal(back.tensors[k.name].bits, code.bits)
        assert got[k.name][code.bits].tobytes() == want.tobytes()
        assert theirs[k.name].tobytes() == got[k.name].tobytes()  # the second reader: the same bits
        pruned = got[k.name][~code.bits]
        assert np.all(pruned == 0) and not np.signbit(pruned).any()  # zeros of the mask: exact +0.0
        steps = plan[k.name].steps
        assert steps.shape == (code.shape[0],)  # qB: per-output-channel steps
        err = np.abs(want - k.values)
        assert np.all(err <= steps[k.chan] * 0.5 + 1e-6 * np.abs(k.values))  # at most half a step off
    assert vq.relative_error(
        np.concatenate([k.values for k in kept]), np.concatenate([got[k.name][desc.tensors[k.name].bits] for k in kept])
    ) < 2.0 ** -(bits - 3)


def test_seed_predicted_residual(tmp_path):
    desc = _net()
    kept = vq.kept_tensors(desc)
    rel = {k.name: 0.05 for k in kept}
    plan = vq.plan_relative(kept, rel)
    assert all(q.a is not None and abs(q.a - 1.1) < 0.05 for q in plan.values())
    plain = vq.plan_relative(vq.kept_tensors(desc, predict=False), rel)
    assert all(q.a is None for q in plain.values())
    size = pack(desc, tmp_path / "r.cpk", values=plan)
    assert size < pack(desc, tmp_path / "p.cpk", values=plain)  # the residual codes smaller at the same step
    c = formats.read(tmp_path / "r.cpk")
    assert {f"{n}:a" for n in SHAPES} <= set(c.arrays) and all("h" in e for e in c.meta["t"].values())
    got = _weights(unpack(tmp_path / "r.cpk"))
    theirs = ir.read_network((tmp_path / "r.cpk").read_bytes())
    for k in kept:
        want = vq.decoded(k, plan[k.name])
        assert got[k.name][desc.tensors[k.name].bits].tobytes() == want.tobytes()
        assert theirs[k.name].tobytes() == got[k.name].tobytes()
    # a file whose generated weights do not match the recorded hash is refused
    c.meta["t"]["fc2.weight"]["h"] = "0" * 16
    (tmp_path / "bad.cpk").write_bytes(formats.encode(c))
    with pytest.raises(E.WeightHashError):
        unpack(tmp_path / "bad.cpk")
    with pytest.raises(ValueError):
        ir.read_network((tmp_path / "bad.cpk").read_bytes())


@pytest.mark.parametrize("method", ["import", "imp"])
def test_cancel_mean_balances_rows_and_round_trips(tmp_path, method):
    desc = _net(method=method)
    kept = vq.kept_tensors(desc)
    plan = vq.plan_relative(kept, {k.name: 0.3 for k in kept})
    chosen = {}
    for i, k in enumerate(kept):
        quant, g = plan[k.name], (k.g_kept if plan[k.name].a is not None else None)
        means = np.abs(rng.normal(5, i, (k.values.size,))) + 0.1  # inputs after a ReLU: positive means
        chosen[k.name] = vq.cancel_mean(k.values, quant, k.chan, means, g)
        nearest = vq.quantise(k.values, quant, k.chan, g)
        assert quant.indices is None and np.abs(chosen[k.name].indices - nearest).max() <= 1

        def row_sums(q):
            err = k.values.astype(np.float64) - vq.dequantise(q, quant.steps, k.chan, quant.a, g)
            return np.abs(np.bincount(k.chan, weights=err * means, minlength=k.n_out))

        before, after = row_sums(nearest), row_sums(chosen[k.name].indices)
        assert np.all(after <= before + 1e-12)  # never worse; rows of many weights nearly balanced:
        assert k.name != "fc1.weight" or after.sum() < 0.1 * before.sum()
    pack(desc, tmp_path / "c.cpk", values=chosen)
    got = _weights(unpack(tmp_path / "c.cpk"))
    theirs = ir.read_network((tmp_path / "c.cpk").read_bytes())
    for k in kept:
        bits = desc.tensors[k.name].bits
        assert got[k.name][bits].tobytes() == vq.decoded(k, chosen[k.name]).tobytes()
        assert theirs[k.name].tobytes() == got[k.name].tobytes()
        assert np.all(got[k.name][~bits] == 0) and not np.signbit(got[k.name][~bits]).any()
    wrong = {**chosen, "fc3.weight": vq.Quant(plan["fc3.weight"].steps, plan["fc3.weight"].a, np.zeros(3, np.int32))}
    with pytest.raises(E.SpecError, match="3 quantisation indices"):
        pack(desc, tmp_path / "w.cpk", values=wrong)


def test_input_means_of_linear_layers():
    from connpack import targets

    desc = _net(method="import")
    kept = vq.kept_tensors(desc)
    net = targets._Net(desc, kept)
    x = targets.probe_batch(desc)
    means = net.input_means(kept, x)
    assert set(means) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    cols = np.flatnonzero(desc.tensors["fc1.weight"].bits) % 784
    assert np.allclose(means["fc1.weight"], x.reshape(len(x), -1).double().mean(0).numpy()[cols])


def test_imported_networks_are_not_seed_predicted():
    assert all(k.g_kept is None for k in vq.kept_tensors(_net(method="import")))


def _edited(desc: Description, plan, edit) -> bytes:
    c = to_container(desc, plan)
    edit(c)
    return formats.encode(c)


@pytest.mark.parametrize(
    "edit, error",
    [
        (lambda c: c.arrays.pop("fc3.weight:q"), E.FormatError),
        (lambda c: c.arrays.__setitem__("fc3.weight:q", np.float32([0.1, 0.2])), E.ShapeMismatchError),
        (lambda c: c.arrays.__setitem__("fc3.weight:q", np.float32([-0.1])), E.FormatError),
        (lambda c: c.arrays.__setitem__("fc3.weight:a", np.float32([1.0])), E.FormatError),  # no hash
        (lambda c: c.meta["t"]["fc3.weight"].__setitem__("h", "0123456789abcdef"), E.FormatError),  # hash, no :a
        (lambda c: c.arrays.__setitem__("fc3.weight:v", c.arrays["fc3.weight:v"].astype(np.int8)), E.FormatError),
    ],
)
def test_quantised_sections_are_checked(tmp_path, edit, error):
    desc = _net(method="import")
    plan = vq.plan_bits(vq.kept_tensors(desc), 6)
    path = tmp_path / "bad.cpk"
    path.write_bytes(_edited(desc, plan, edit))
    with pytest.raises(error):
        unpack(path, check=False)


def test_float_values_lossless(tmp_path):
    desc = _net(method="import")
    for t in ("float16", "bfloat16", "float32"):
        pack(desc, tmp_path / f"{t}.cpk", values=t)
        got = _weights(unpack(tmp_path / f"{t}.cpk"))
        for n, code in desc.tensors.items():
            want = (
                code.values.astype(np.float32)
                if t == "float32"
                else np.asarray(to_container(desc, t).arrays[f"{n}:v"]).astype(np.float32)
            )
            assert got[n][code.bits].tobytes() == want.tobytes()


# --------------------------------------------------------------------------- targets, API and CLI
def test_max_error_on_weights_and_outputs(tmp_path):
    desc = _net()
    for on, target in (("weights", 0.02), ("outputs", 0.01)):
        size, choice = api.pack_values(desc, tmp_path / f"{on}.cpk", max_error=target, error_on=on)
        ((_, reached),) = choice.reached.items()
        assert reached <= target
        back = unpack(tmp_path / f"{on}.cpk")
        if on == "weights":
            kept = vq.kept_tensors(desc)
            got = np.concatenate([back.tensors[k.name].values for k in kept])
            assert vq.relative_error(np.concatenate([k.values for k in kept]), got) == pytest.approx(reached)
        coarser = api.pack(desc, tmp_path / "c.cpk", max_error=target * 4, error_on=on)
        assert coarser < size


def test_max_accuracy_drop_lands_within_the_drop(tmp_path):
    from connpack import targets

    desc = api.with_data(_net(method="import"), "mnist")
    choice = targets.max_accuracy_drop(desc, 0.5, limit=400)
    assert choice.reached["float32 accuracy"] - choice.reached["accuracy"] <= 0.5
    assert all(q.indices is not None for q in choice.plan.values())  # balanced on the test images' means
    pack(desc, tmp_path / "a.cpk", values=choice.plan)
    got = _weights(unpack(tmp_path / "a.cpk"))
    for k in vq.kept_tensors(desc):
        assert got[k.name][desc.tensors[k.name].bits].tobytes() == vq.decoded(k, choice.plan[k.name]).tobytes()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--values", "q0"], "q2 .. q16"),
        (["--values", "float8"], "unknown value type"),
        (["--max-error", "-1"], "--max-error must be a number > 0"),
        (["--max-error", "0.1", "--error-on", "logits"], "--error-on"),
        (["--max-accuracy-drop", "0.1"], "records none"),
        (["--values", "q8", "--max-error", "0.1"], "exclude each other"),
    ],
)
def test_bad_settings_exit_2_and_write_nothing(runner, tmp_path, args, needle):
    src = tmp_path / "m.pt"
    runfile.save(src, _net(method="import"))
    out = tmp_path / "m.cpk"
    res = run_cli(runner, "pack", src, "-o", out, *args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_cli_target_prints_its_choice(runner, tmp_path):
    src = tmp_path / "m.pt"
    runfile.save(src, _net())
    out = tmp_path / "m.cpk"
    res = run_cli(runner, "pack", src, "-o", out, "--max-error", "0.01")
    assert res.exit_code == 0, res.output
    assert "target output error <= 0.01: reached output error" in res.output and "x generated weight" in res.output
    assert out.exists()
    res = run_cli(runner, "pack", src, "-o", tmp_path / "q.cpk", "--values", "q6")
    assert res.exit_code == 0 and (tmp_path / "q.cpk").stat().st_size < out.stat().st_size * 2


def test_quantised_biases(tmp_path):
    """Biases of quantised layers are stored as indices with one step (cpk.md 7.2.1); others stay float32."""
    desc = _net()
    spec = NetworkSpec(
        model=ModelSpec(arch="lenet300", width=0.05, bias=True), rng=desc.spec.rng, init=desc.spec.init, method="imp"
    )
    dense = {n.replace("weight", "bias"): np.linspace(-0.3, 0.4, s[0], dtype=np.float32) for n, s in SHAPES.items()}
    desc = Description(spec, desc.tensors, dense)
    kept = vq.kept_tensors(desc)
    assert [k.name for k in kept][3:] == list(dense)
    plan = vq.plan_bits(kept, 6)
    pack(desc, tmp_path / "b.cpk", values=plan)
    c = formats.read(tmp_path / "b.cpk")
    assert c.arrays["fc1.bias"].dtype == np.int32 and c.arrays["fc1.bias:q"].shape == (1,)
    got = unpack(tmp_path / "b.cpk").state_dict()
    theirs = ir.read_network((tmp_path / "b.cpk").read_bytes())
    for k in kept[3:]:
        want = vq.decoded(k, plan[k.name])
        assert got[k.name].dtype == np.float32 and got[k.name].tobytes() == want.tobytes()
        assert theirs[k.name].tobytes() == want.tobytes()
        assert np.abs(want - k.values).max() <= plan[k.name].steps[0] / 2 + 1e-7
    c.arrays["fc2.bias:q"] = np.float32([0.1, 0.2])  # a step section of the wrong shape
    (tmp_path / "bad.cpk").write_bytes(formats.encode(c))
    with pytest.raises(E.FormatError):
        unpack(tmp_path / "bad.cpk")
