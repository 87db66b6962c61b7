"""`connpack pack` killed with SIGKILL at random moments never leaves a partial .cpk.

The writer (connpack.formats.write) puts the bytes in a hidden temp file ``.<name>.<random>.tmp`` beside the
target, fsyncs it and renames it over the target. So after a kill the target is absent, its old content, or
the complete new file; the only possible leftover is such a temp file (nothing can remove it after SIGKILL;
on an ordinary error the writer removes it itself, see test_formats.test_write_failure_leaves_nothing).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from connpack import runfile
from connpack.description import Description, TensorCode
from connpack.errors import ConnpackError
from connpack.packing import pack
from connpack.specs import ModelSpec, NetworkSpec

TEMP = re.compile(r"^\.m\.cpk\.[^/]+\.tmp$")


def _model_pt(path: Path, seed: int) -> None:
    """A full-size LeNet-300-100 with random masks (no training): packing it takes a noticeable moment."""
    g = np.random.default_rng(seed)
    spec = NetworkSpec(model=ModelSpec(arch="lenet300"), method="prune")
    shapes = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
    runfile.save(path, Description(spec, {n: TensorCode("mask", s, bits=g.random(s) < 0.3) for n, s in shapes.items()}))


def _pack_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "connpack", "pack", str(src), "-o", str(out)]


def test_sigkill_during_pack_leaves_old_or_complete_file(tmp_path):
    src, old_src = tmp_path / "new.pt", tmp_path / "old.pt"
    _model_pt(src, 1)
    _model_pt(old_src, 2)
    ref_dir = tmp_path / "ref"
    t0 = time.perf_counter()
    done = subprocess.run(_pack_cmd(src, ref_dir / "m.cpk"), capture_output=True, text=True)
    full = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    new = (ref_dir / "m.cpk").read_bytes()
    pack(runfile.load(old_src)[0], ref_dir / "old.cpk")  # the writer is deterministic: same bytes as the CLI's
    old = (ref_dir / "old.cpk").read_bytes()
    assert old != new

    rnd = random.Random(1234)
    delays = sorted(rnd.uniform(0.3, 1.1) * full for _ in range(4))
    outcomes = set()
    for k, delay in enumerate(delays):
        work = tmp_path / f"run{k}"
        work.mkdir()
        if k % 2:  # half the runs replace an existing file
            (work / "m.cpk").write_bytes(old)
        proc = subprocess.Popen(_pack_cmd(src, work / "m.cpk"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        names = sorted(os.listdir(work))
        stray = [n for n in names if n != "m.cpk" and not TEMP.match(n)]
        assert stray == [], names
        if "m.cpk" in names:
            got = (work / "m.cpk").read_bytes()
            assert got in (old, new), f"partial target after a kill at {delay:.2f}s"
            outcomes.add("new" if got == new else "old")
        else:
            assert k % 2 == 0
            outcomes.add("absent")
    assert outcomes  # (which outcomes occur depends on the machine's speed; each one is checked above)


def test_pack_error_leaves_nothing(tmp_path):
    """An ordinary failure (here: a description the writer refuses) removes its temp file."""
    spec = NetworkSpec(model=ModelSpec(arch="lenet300"), method="prune")
    bad = Description(
        spec,
        {"fc1.weight": TensorCode("dense", (2, 2), values=np.zeros((2, 2), np.float32))},
        {"x": np.zeros(2, dtype=np.complex64)},
    )
    with pytest.raises(ConnpackError):
        pack(bad, tmp_path / "m.cpk")
    assert os.listdir(tmp_path) == []
