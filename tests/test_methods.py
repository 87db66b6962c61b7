"""The method registry: the config is a leaf, options come from the dataclasses, dispatch is by registry."""

import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

from connpack.errors import SpecError
from connpack.trainers import make_config, methods
from connpack.trainers.config import TrainConfig
from tests.conftest import run_cli


def test_importing_the_config_imports_no_method():
    code = (
        "import sys, connpack.trainers.config; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('connpack.trainers'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["connpack.trainers", "connpack.trainers.config"]


def test_reading_the_registry_imports_no_torch():
    code = "import sys, connpack.trainers.methods; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_no_method_name_is_compared_outside_the_registry():
    root = Path(__file__).resolve().parents[1] / "connpack"
    hits = subprocess.run(["grep", "-rn", r"method ==\|method in (", str(root)], capture_output=True, text=True).stdout
    assert hits == ""


def test_every_registered_method_has_a_frozen_hparams_dataclass_with_help():
    assert list(methods.METHODS) == ["baseline", "prune", "flip", "edge-popup", "asni", "imp"]
    for name, m in methods.METHODS.items():
        assert m.name == name
        for f in fields(m.Hparams):
            assert f.metadata.get("help"), (name, f.name)
        with pytest.raises(Exception):  # frozen
            setattr(m.Hparams(), "x", 1)


def test_cli_options_are_generated_from_the_dataclasses(runner):
    res = run_cli(runner, "train", "--help")
    flat = " ".join(res.output.split())
    for f in TrainConfig.common_fields():
        assert f"--{f.name.replace('_', '-')}" in flat
    for name in methods.hparam_fields():
        assert f"--{name.replace('_', '-')}" in flat


def test_an_option_of_another_method_is_refused_in_one_line(runner, tmp_path):
    with pytest.raises(SpecError, match="--alpha is for --method asni, not flip"):
        make_config(method="flip", alpha=90.0)
    res = run_cli(runner, "train", "--method", "prune", "--k", "0.3", "-o", tmp_path / "m.pt")
    assert res.exit_code == 2 and "--k is for --method edge-popup" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_a_new_method_is_one_module_and_one_registry_entry(monkeypatch):
    """What adding a method takes: a Method subclass with its Hparams; registered, make_config knows it."""
    from connpack.trainers.gated import Gated

    @dataclass(frozen=True)
    class ToyHparams:
        temperature: float = field(default=1.0, metadata={"help": "a new option is one field"})

    class Toy(Gated):
        name = "toy"
        Hparams = ToyHparams
        mode = "prune"

    class Module:
        METHOD = Toy()

    monkeypatch.setattr(methods, "METHODS", {**methods.METHODS, **methods._register(Module)})
    cfg = make_config(method="toy", temperature=2.0, dataset="synthetic-mnist")
    assert cfg.hp.temperature == 2.0 and cfg.to_dict()["temperature"] == 2.0 and cfg.batch_size == 25
