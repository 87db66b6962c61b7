"""Kill `connpack train` mid-run with SIGKILL, resume it, and get the uninterrupted run's masks exactly."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch

from connpack import runfile
from connpack.trainers import make_config, train

ARGS = dict(
    method="flip", variant="minimal", dataset="synthetic-mnist", epochs=3, limit=600, batch_size=10, device="cpu"
)


def _cmd(out, *extra):
    cli = [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    return [sys.executable, "-m", "connpack", "train", *cli, "-o", str(out), "-q", *extra]


def test_sigkill_then_resume_gives_the_uninterrupted_masks(tmp_path):
    out = tmp_path / "model.pt"
    ckpt = tmp_path / "model.pt.ckpt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_cmd(out), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while proc.poll() is None and not ckpt.exists() and time.monotonic() < deadline:
        assert not out.exists()  # the model file appears only at the end, in one rename
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-run"
    assert not out.exists()
    state = torch.load(ckpt, weights_only=True)  # the checkpoint is whole (written atomically)
    assert 1 <= state["epoch"] < ARGS["epochs"]

    # a resume with other settings is refused in one line, before any training
    bad = subprocess.run(_cmd(out, "--resume", "--lr", "0.5"), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "other settings" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

    done = subprocess.run(_cmd(out, "--resume"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ckpt.exists()  # kept: a larger --epochs with --resume extends the finished run
    resumed, metrics = runfile.load(out)
    assert [m["epoch"] for m in metrics] == list(range(1, ARGS["epochs"] + 1))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1): the float reduction order depends on it
    try:
        whole, whole_metrics = train(make_config(**ARGS))
    finally:
        torch.set_num_threads(threads)
    for name, code in whole.tensors.items():
        assert np.array_equal(resumed.tensors[name].bits, code.bits), name
    assert [m["train_loss"] for m in metrics] == [m["train_loss"] for m in whole_metrics]
