"""Hostile command lines and filesystems (issue 16, the CLI side): outputs that alias inputs, special files,
several outputs written all or none, full disks, corrupt checkpoints, usage errors, terminal injection,
signals. Every case: one line on stderr, the exit code of its class, nothing half-written, nothing lost."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from connpack import atomic, runfile
from connpack.description import Description, TensorCode
from connpack.errors import InputFileError
from connpack.specs import ModelSpec, NetworkSpec
from tests.conftest import run_cli


def _one_line_error(result, code):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("connpack: error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def files(trained, tmp_path_factory):
    """A model.pt and its .cpk, each copied into every test's folder by ``work``."""
    root = tmp_path_factory.mktemp("hostile")
    pt, cpk = root / "m.pt", root / "m.cpk"
    pt.write_bytes(trained["flip-minimal"].read_bytes())
    from connpack.api import pack

    pack(pt, cpk)
    return {"pt": pt.read_bytes(), "cpk": cpk.read_bytes()}


@pytest.fixture
def work(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.pt").write_bytes(files["pt"])
    (tmp_path / "m.cpk").write_bytes(files["cpk"])
    return tmp_path


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ----------------------------------------------------------------------------------------- 1. data loss
@pytest.mark.parametrize(
    "make,args",
    [
        (None, ["pack", "m.pt", "-o", "m.pt"]),
        ("hard", ["pack", "m.pt", "-o", "alias.cpk"]),
        ("sym", ["pack", "m.pt", "-o", "alias.cpk"]),
        (None, ["pack", "m.cpk"]),  # the default output beside a .cpk input is the input itself
        (None, ["unpack", "m.cpk", "--onnx", "m.cpk"]),
        ("sym", ["unpack", "m.cpk", "--pt", "alias.cpk"]),
        (None, ["unpack", "m.cpk", "--onnx", "F", "--pt", "F"]),
        (None, ["unpack", "m.cpk", "--onnx", "F", "--pt", "./sub/../F"]),
        (None, ["report", "m.cpk", "--plot", "m.cpk"]),
        (None, ["compare", "m.cpk", "m.pt", "--plot", "m.pt"]),
        ("ckpt", ["train", "-o", "r.pt", "--resume", "--dataset", "synthetic-mnist"]),  # model.pt = its checkpoint
    ],
)
def test_outputs_never_alias_inputs(runner, work, make, args):
    (work / "sub").mkdir()
    if make == "hard":
        os.link(work / "m.pt", work / "alias.cpk")
    elif make == "sym":
        os.symlink(work / ("m.pt" if args[0] == "pack" else "m.cpk"), work / "alias.cpk")
    elif make == "ckpt":
        (work / "r.pt.ckpt").write_bytes(b"a checkpoint")
        os.link(work / "r.pt.ckpt", work / "r.pt")
    before = {n: (work / n).read_bytes() for n in _listing(work) if (work / n).is_file()}
    r = run_cli(runner, *args)
    _one_line_error(r, 2)
    assert "same file" in r.stderr
    assert {n: (work / n).read_bytes() for n in _listing(work) if (work / n).is_file()} == before


def test_existing_special_file_is_no_output(runner, work):
    r = run_cli(runner, "unpack", "m.cpk", "--onnx", "/dev/null")
    _one_line_error(r, 2)
    assert os.path.exists("/dev/null") and not Path("/dev/null").is_file()


def test_two_outputs_all_or_none(runner, work):
    r = run_cli(runner, "unpack", "m.cpk", "--onnx", "ok.onnx", "--pt", "/proc/x.pt")
    _one_line_error(r, 3)
    assert "/proc/x.pt" in r.stderr
    assert _listing(work) == ["m.cpk", "m.pt"]  # no ok.onnx, no temp file
    r = run_cli(runner, "unpack", "m.cpk", "--onnx", "ok.onnx", "--pt", "ok.pt")
    assert r.exit_code == 0, r.stderr
    assert (work / "ok.onnx").stat().st_size > 0 and (work / "ok.pt").stat().st_size > 0


def test_atomic_paths_commit_all_or_none(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"old a")
    with pytest.raises(InputFileError, match="cannot write"):
        with atomic.atomic_paths(a, b) as (ta, tb):
            ta.write_bytes(b"new a")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert _listing(tmp_path) == ["a"] and a.read_bytes() == b"old a"
    with pytest.raises(RuntimeError):
        with atomic.atomic_paths(a, b) as (ta, tb):
            ta.write_bytes(b"new a")
            raise RuntimeError("a bug")
    assert _listing(tmp_path) == ["a"]
    with atomic.atomic_paths(a, b) as (ta, tb):
        ta.write_bytes(b"new a")
        tb.write_bytes(b"new b")
    assert a.read_bytes() == b"new a" and b.read_bytes() == b"new b" and _listing(tmp_path) == ["a", "b"]


def _full_disk(path, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_full_disk_under_torch_save_is_a_file_error(runner, work, monkeypatch):
    """torch.save writes through a Python file object (connpack.ptfile), so ENOSPC is an OSError: exit 3."""
    import builtins

    real_open = builtins.open

    def open_full(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if "w" in mode and "b" in mode and os.path.basename(str(path)).startswith(".x.pt."):

            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")

            f.write = write
        return f

    monkeypatch.setattr(builtins, "open", open_full)
    r = run_cli(runner, "unpack", "m.cpk", "--onnx", "x.onnx", "--pt", "x.pt")
    _one_line_error(r, 3)
    assert "No space left on device" in r.stderr
    assert _listing(work) == ["m.cpk", "m.pt"]


def test_torch_zip_writer_errors_are_os_errors(tmp_path, monkeypatch):
    """torch's writer turns a short write on a full disk into RuntimeError("... unexpected pos ..."): ptfile.save
    reports it as the OSError it is, so connpack.atomic makes it a file error (exit 3), not an internal one."""
    from connpack import ptfile

    def short_write(obj, f):
        f.write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 896 vs 790")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(InputFileError, match="cannot write .*x.pt"):
        with atomic.atomic_path(tmp_path / "x.pt") as tmp:
            ptfile.save({"a": torch.zeros(3)}, tmp)
    assert _listing(tmp_path) == []


def test_train_writes_model_and_metrics_together_and_keeps_the_checkpoint(runner, work, monkeypatch):
    """The metrics cannot be written (full disk): no model.pt either, and the checkpoint is still there."""
    import connpack.cli.train as train_cli

    real = atomic.atomic_paths
    calls = []

    def failing(*paths):
        calls.append(paths)
        if len(paths) == 2:  # the final model.pt + metrics group: its metrics file hits a full disk
            cm = real(*paths)

            class Wrap:
                def __enter__(self):
                    tmps = cm.__enter__()
                    return tmps

                def __exit__(self, *exc):
                    if exc[0] is None:
                        try:
                            raise OSError(errno.ENOSPC, "No space left on device", str(paths[1]))
                        except OSError:
                            return cm.__exit__(*sys.exc_info())
                    return cm.__exit__(*exc)

            return Wrap()
        return real(*paths)

    monkeypatch.setattr(train_cli.atomic, "atomic_paths", failing)
    r = run_cli(runner, "train", "--dataset", "synthetic-mnist", "--epochs", "1", "--limit", "100", "-q", "-o", "t.pt")
    _one_line_error(r, 3)
    assert calls and "No space left on device" in r.stderr
    names = _listing(work)
    assert "t.pt" not in names and "t.metrics.json" not in names and "t.pt.ckpt" in names, names
    assert not [n for n in names if n.endswith(".tmp")]


@pytest.mark.parametrize("content", ["garbage", "late-epoch", "not-a-dict"])
def test_resume_from_a_corrupt_checkpoint_keeps_it(runner, work, content):
    ckpt = work / "r.pt.ckpt"
    if content == "garbage":
        ckpt.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    elif content == "late-epoch":  # a valid torch file whose epoch is past the run: nothing would be trained
        torch.save({"epoch": 99, "model": {}, "optimizer": {}, "scheduler": {}, "metrics": [], "meta": {}}, ckpt)
    else:
        torch.save([1, 2, 3], ckpt)
    before = ckpt.read_bytes()
    r = run_cli(
        runner,
        "train",
        "--dataset",
        "synthetic-mnist",
        "--epochs",
        "1",
        "--limit",
        "50",
        "-q",
        "-o",
        "r.pt",
        "--resume",
    )
    _one_line_error(r, 3)
    assert ckpt.read_bytes() == before
    assert not (work / "r.pt").exists()


# --------------------------------------------------------------------------------- 2. special files
def _special(kind: str, folder: Path) -> str:
    if kind == "fifo":
        os.mkfifo(folder / "fifo.cpk")
        return "fifo.cpk"
    if kind == "dir":
        (folder / "d.cpk").mkdir()
        return "d.cpk"
    return "/dev/zero"


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
@pytest.mark.parametrize(
    "cmd",
    [
        ["unpack", "{}", "--onnx", "o.onnx"],
        ["pack", "{}", "-o", "o.cpk"],
        ["report", "{}"],
        ["eval", "{}"],
        ["bench", "{}"],
        ["compare", "m.cpk", "{}"],
    ],
)
def test_only_regular_files_are_read(runner, work, kind, cmd):
    path = _special(kind, work)
    r = run_cli(runner, *[a.format(path) for a in cmd])
    _one_line_error(r, 3)
    assert "regular file" in r.stderr or "directory" in r.stderr
    assert not any(n.startswith(("o.", ".o.")) for n in _listing(work))


# --------------------------------------------------------------------------------- 3. bounded reads
def test_zip_bomb_pt_is_refused_before_torch_load(runner, work):
    """A 128 kB deflated zip that declares 128 MB: refused from its central directory, nothing decompressed."""
    import zipfile

    bomb = work / "bomb.pt"
    chunk = b"\x00" * (1 << 20)
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data.pkl", "w", force_zip64=True) as f:
            for _ in range(128):
                f.write(chunk)
    assert bomb.stat().st_size < 1 << 20
    t0 = time.perf_counter()
    r = run_cli(runner, "pack", bomb, "-o", "b.cpk")
    _one_line_error(r, 3)
    assert "budget" in r.stderr and time.perf_counter() - t0 < 5
    assert not (work / "b.cpk").exists()


# ----------------------------------------------------------------------------- 4. exit code by source
@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--weight-decay", "nan"], "finite"),
        (["train", "--lr", "inf"], "finite"),
        (["train", "--width", "1e6"], "width"),
        (["pack", "m.pt", "--in-shape", "1,100000000000000000000,1"], "too large"),
        (["pack", "m.pt", "--in-shape", "1,1e20,1"], "integers"),
        (["pack", "--nope"], "No such option"),
        (["train", "--epochs", "abc"], "--epochs"),
        (["nope"], "No such command"),
        (["unpack"], "Missing argument"),
    ],
)
def test_command_line_faults_are_usage_errors(runner, work, args, needle):
    if args[0] == "train":
        args = [*args, "--dataset", "synthetic-mnist", "--limit", "50", "-q", "-o", "w.pt"]
    r = run_cli(runner, *args)
    _one_line_error(r, 2)
    assert needle in r.stderr
    assert _listing(work) == ["m.cpk", "m.pt"]


def test_complex_state_dict_is_refused(runner, work):
    """Packing would drop the imaginary part silently: refused as a file error."""
    torch.save(
        {
            "fc1.weight": torch.zeros(300, 784, dtype=torch.complex64),
            "fc2.weight": torch.zeros(100, 300),
            "fc3.weight": torch.zeros(10, 100),
        },
        work / "c.pt",
    )
    r = run_cli(runner, "pack", "c.pt", "--arch", "connpack:lenet300", "-o", "c.cpk")
    _one_line_error(r, 3)
    assert "complex" in r.stderr and not (work / "c.cpk").exists()


def _idx(dims, body: bytes | None = None) -> bytes:
    head = bytes([0, 0, 8, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return head + (bytes(int(np.prod(dims))) if body is None else body)


@pytest.mark.parametrize(
    "case",
    [
        "short-header",
        "wrong-size",
        "bad-gzip",
        "directory",
        "fifo",
        "label-range",
        "wrong-dims",
        "gzip-bomb",
        "cifar-records",
        "cifar-missing",
    ],
)
def test_malformed_datasets_are_data_errors(runner, work, case):
    import gzip

    raw = work / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    files = {
        "train-images-idx3-ubyte": _idx((3, 28, 28)),
        "train-labels-idx1-ubyte": _idx((3,)),
        "t10k-images-idx3-ubyte": _idx((3, 28, 28)),
        "t10k-labels-idx1-ubyte": _idx((3,)),
    }
    for name, blob in files.items():
        (raw / name).write_bytes(blob)
    images = raw / "train-images-idx3-ubyte"
    dataset = "mnist"
    if case == "short-header":
        images.write_bytes(b"\x00\x00\x08\x03\x00")
    elif case == "wrong-size":
        images.write_bytes(_idx((3, 28, 28), b"\x00" * 10))
    elif case == "bad-gzip":
        images.unlink()
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    elif case == "directory":
        images.unlink()
        images.mkdir()
    elif case == "fifo":
        images.unlink()
        os.mkfifo(images)
    elif case == "label-range":
        (raw / "train-labels-idx1-ubyte").write_bytes(_idx((3,), bytes([1, 2, 200])))
    elif case == "wrong-dims":
        images.write_bytes(_idx((3, 32, 32)))
    elif case == "gzip-bomb":  # 100,000 images declared and present: 78 MB of zeros in an 80 kB file
        images.unlink()
        (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((100_000, 28, 28)), 9))
        (raw / "train-labels-idx1-ubyte").write_bytes(_idx((100_000,)))  # a consistent pair: only the budget refuses
    else:
        dataset = "cifar10"
        folder = work / "data" / "cifar-10-batches-bin"
        folder.mkdir()
        for i in range(1, 6):
            (folder / f"data_batch_{i}.bin").write_bytes(bytes(3073 * 2))
        if case == "cifar-records":
            (folder / "data_batch_3.bin").write_bytes(bytes(3000))
        else:
            (folder / "data_batch_5.bin").unlink()
    r = run_cli(runner, "train", "--dataset", dataset, "--data-dir", work / "data", "--epochs", "1", "-q", "-o", "x.pt")
    _one_line_error(r, 5)
    assert case != "gzip-bomb" or "compression bomb" in r.stderr
    assert not (work / "x.pt").exists()


@pytest.mark.parametrize("graph", ["one-d-output", "no-inputs"])
@pytest.mark.parametrize("cmd", ["eval", "bench"])
def test_checker_valid_onnx_that_is_no_classifier_is_a_file_error(runner, work, graph, cmd):
    import onnx
    from onnx import TensorProto, helper

    opset = [helper.make_opsetid("", 18)]
    if graph == "one-d-output":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
        axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
        g = helper.make_graph([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)], "g", [x], [y], [axes])
    else:
        c = helper.make_tensor("c", TensorProto.FLOAT, [1, 10], np.zeros(10, np.float32))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
        g = helper.make_graph([helper.make_node("Identity", ["c"], ["y"])], "g", [], [y], [c])
    model = helper.make_model(g, opset_imports=opset)
    onnx.checker.check_model(model)
    onnx.save(model, work / "g.onnx")
    extra = (
        ["--dataset", "synthetic-mnist", "--limit", "10"]
        if cmd == "eval"
        else ["--runs", "2", "--warmup", "0", "--batch", "2"]
    )
    r = run_cli(runner, cmd, "g.onnx", *extra)
    _one_line_error(r, 3)


def test_third_party_warnings_do_not_reach_stderr(runner, work, monkeypatch):
    """A library warning during a command (torch, onnxruntime, numpy...) is folded away: one line on stderr."""
    import warnings

    import connpack.packing

    def noisy(*args, **kwargs):
        warnings.warn("TypedStorage is deprecated", UserWarning, stacklevel=1)
        raise InputFileError("m.cpk: refused")

    monkeypatch.setattr(connpack.packing, "unpack", noisy)
    # as outside pytest (which records warnings): a shown warning goes to stderr
    monkeypatch.setattr(
        warnings,
        "showwarning",
        lambda message, category, *a, **k: sys.stderr.write(f"{category.__name__}: {message}\n"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        r = run_cli(runner, "unpack", "m.cpk", "--onnx", "o.onnx")
    _one_line_error(r, 3)
    assert "TypedStorage" not in r.stderr + r.stdout


# ------------------------------------------------------------------------------ 5. terminal injection
def test_markup_and_control_characters_in_paths_are_shown_escaped(runner, work):
    (work / "a[").mkdir()
    r = run_cli(runner, "unpack", "m.cpk", "--onnx", "a[/x]b.onnx")
    assert r.exit_code == 0, r.stderr
    assert "a[/x]b.onnx" in r.stdout and (work / "a[" / "x]b.onnx").exists()
    evil = "e\x1b]0;pwned\x07\x1b[2J.onnx"
    r = run_cli(runner, "unpack", "m.cpk", "--onnx", evil)
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "e\\x1b]0;pwned\\x07\\x1b[2J.onnx" in r.stdout
    r = run_cli(runner, "report", "\x1b[2Jmissing.cpk")
    _one_line_error(r, 3)
    assert "\x1b" not in r.stderr and "\\x1b[2Jmissing.cpk" in r.stderr


def test_header_strings_reach_the_terminal_escaped(runner, work):
    """A .cpk whose metadata strings carry escape sequences and markup: report shows them escaped."""
    from connpack.packing import pack

    spec = NetworkSpec(model=ModelSpec(arch="lenet300"), method="prune", hparams={"note": "[/x]\x1b]0;title\x07"})
    g = np.random.default_rng(0)
    shapes = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
    desc = Description(spec, {n: TensorCode("mask", s, bits=g.random(s) < 0.5) for n, s in shapes.items()})
    desc.record_hashes(desc.generated())
    pack(desc, work / "[red]x[/red]\x1b[31m.cpk")
    r = run_cli(runner, "report", "[red]x[/red]\x1b[31m.cpk")
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout and "[red]x[/red]\\x1b[31m.cpk" in r.stdout


# ---------------------------------------------------------------------------------------- 6. signals
def _big_model(path: Path) -> None:
    g = np.random.default_rng(3)
    spec = NetworkSpec(model=ModelSpec(arch="lenet300", width=4.0), method="prune")
    shapes = {"fc1.weight": (1200, 784), "fc2.weight": (400, 1200), "fc3.weight": (10, 400)}
    desc = Description(spec, {n: TensorCode("mask", s, bits=g.random(s) < 0.3) for n, s in shapes.items()})
    desc.record_hashes(desc.generated())
    runfile.save(path, desc)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_remove_temp_files(tmp_path, sig):
    """Signalled while its temp files exist, unpack removes them and exits 128 + the signal number."""
    src = tmp_path / "big.pt"
    _big_model(src)
    from connpack.api import pack

    pack(src, tmp_path / "big.cpk")
    out = tmp_path / "out"
    out.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "connpack",
        "unpack",
        str(tmp_path / "big.cpk"),
        "--onnx",
        str(out / "b.onnx"),
        "--pt",
        str(out / "b.pt"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not os.listdir(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert os.listdir(out), "the temp files never appeared"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert os.listdir(out) == []
    assert err.strip().splitlines() == [f"connpack: error: terminated by {signal.Signals(sig).name}"]


# -------------------------------------------------------------------------------- 7. README contract
def test_readme_error_contract_is_unchanged():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert (
        "Errors are one line on stderr with an exit code per class: 2 usage/option, 3 input file, 4 .cpk format, "
        "5 data, 70 internal (`--debug` shows the traceback)"
    ) in " ".join(readme.split())


def test_metrics_json_is_written_beside_the_model(runner, work):
    r = run_cli(runner, "train", "--dataset", "synthetic-mnist", "--epochs", "1", "--limit", "100", "-q", "-o", "n.pt")
    assert r.exit_code == 0, r.stderr
    assert json.loads((work / "n.metrics.json").read_text())[0]["epoch"] == 1
    assert (work / "n.pt.ckpt").exists() and (work / "n.pt").exists()  # kept: a larger --epochs extends the run
