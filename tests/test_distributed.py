"""torchrun with 2 gloo processes on CPU against one process with the same global batches.

What holds and why (connpack.distributed): each rank computes its half of every global batch and DDP adds
the two half-sums of the gradient; one process sums the whole batch at once. Float addition is not
associative, so the summed gradients (and losses) may differ in the last bits. With plain SGD (so a wrong
gradient *scale* would show, which Adam would hide) the per-epoch losses agree to 1e-5 relative and the masks
are identical on this run; we allow at most 0.1% of differing bits, the room that float reordering can
legitimately take when a score sits within an ulp of 0.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from connpack import runfile
from connpack.distributed import Context
from connpack.trainers import make_config, train

ARGS = dict(
    method="prune",
    dataset="synthetic-mnist",
    epochs=2,
    limit=600,
    batch_size=50,
    optimizer="sgd",
    lr=0.05,
    device="cpu",
)


def test_two_gloo_ranks_match_a_single_process(tmp_path):
    out = tmp_path / "ddp.pt"
    cli = [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "connpack",
            "train",
            *cli,
            "-o",
            str(out),
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("wrote") == 1  # only rank 0 prints (and writes)
    ddp, ddp_metrics = runfile.load(out)

    single, single_metrics = train(make_config(**ARGS))
    assert len(ddp_metrics) == len(single_metrics) == 2
    for a, b in zip(ddp_metrics, single_metrics):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-5 * b["train_loss"]
        assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]
    differing = sum(int((ddp.tensors[k].bits != single.tensors[k].bits).sum()) for k in single.tensors)
    total = sum(c.size for c in single.tensors.values())
    assert differing <= 1e-3 * total, f"{differing} of {total} mask bits differ"
    assert json.loads(out.with_suffix(".metrics.json").read_text())[-1]["epoch"] == 2


def test_shards_tile_the_global_batch():
    import torch

    idx = torch.arange(11)
    parts = [Context(rank=r, world=3).shard(idx) for r in range(3)]
    assert torch.equal(torch.cat(parts), idx)
    bounds = [Context(rank=r, world=3).slice_bounds(10) for r in range(3)]
    assert bounds[0][0] == 0 and bounds[-1][1] == 10 and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert np.array_equal(Context().shard(idx).numpy(), idx.numpy())


PRUNING = {
    "asni": dict(
        method="asni",
        dataset="synthetic-mnist",
        epochs=2,
        limit=400,
        batch_size=40,
        optimizer="sgd",
        lr=0.05,
        alpha=90.0,
        gamma=0.5,
        device="cpu",
    ),
    "imp": dict(
        method="imp", dataset="synthetic-mnist", epochs=1, limit=400, batch_size=40, iterations=1, device="cpu"
    ),
}
OUTPUTS = {
    "asni": {"m.pt", "m.metrics.json", "m.init.pt", "m.C.pt"},
    "imp": {"m.pt", "m.metrics.json", "m.ticket.pt", "m.iterations.png"},
}


@pytest.mark.parametrize("method", ["asni", "imp"])
def test_asni_and_imp_under_two_gloo_ranks_match_a_single_process(tmp_path, method):
    """Same loop, same DDP context as the connectivity methods: the pruned masks are the single process's."""
    args = PRUNING[method]
    out = tmp_path / "m.pt"
    cli = [f"--{k.replace('_', '-')}={v}" for k, v in args.items()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "connpack",
            "train",
            *cli,
            "-o",
            str(out),
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(f"wrote {out} ") == 1  # rank 0 alone writes and prints
    assert {p.name for p in tmp_path.iterdir()} == OUTPUTS[method]  # and no checkpoint is left behind
    ddp, ddp_metrics = runfile.load(out)

    single, single_metrics = train(make_config(**args))
    assert len(ddp_metrics) == len(single_metrics)
    for a, b in zip(ddp_metrics, single_metrics):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4 * b["train_loss"]
    differing = sum(int((ddp.tensors[k].bits != single.tensors[k].bits).sum()) for k in single.tensors)
    total = sum(c.size for c in single.tensors.values())
    assert differing <= 1e-3 * total, f"{differing} of {total} mask bits differ"
    assert 0 < sum(int(c.bits.sum()) for c in single.tensors.values()) < total  # something was pruned
