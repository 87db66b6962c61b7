from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connpack import runfile
from connpack.cli import app
from connpack.trainers import make_config, train


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    return CliRunner()


def run_cli(runner: CliRunner, *args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Small trained models (synthetic data, 1 epoch), one per method/variant, saved as model.pt files."""
    root = tmp_path_factory.mktemp("trained")
    out = {}
    for method, variant in [
        ("flip", "free"),
        ("flip", "minimal"),
        ("prune", "free"),
        ("prune", "minimal"),
        ("baseline", "free"),
    ]:
        cfg = make_config(method=method, variant=variant, dataset="synthetic-mnist", epochs=1, device="cpu", limit=600)
        desc, metrics = train(cfg)
        path = root / f"{method}-{variant}.pt"
        runfile.save(path, desc, metrics)
        out[f"{method}-{variant}"] = path
    return out
