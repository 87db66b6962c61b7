"""Each reproduction script runs end to end at its smallest setting and writes JSON + PNG."""
import importlib
import json

import pytest

SCRIPTS = ["ivan_florian_table1", "ivan_florian_fig4"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_reproduction_script_smoke(tmp_path, name):
    mod = importlib.import_module(f"benchmarks.reproduce.{name}")
    results = mod.main(["--smoke", "--out", str(tmp_path), "--device", "cpu"])
    payload = json.loads((tmp_path / f"{name}_smoke.json").read_text())
    assert (tmp_path / f"{name}_smoke.png").stat().st_size > 1000
    assert payload["results"].keys() == results.keys() and results
    for entry in payload["results"].values():
        run = entry["runs"][0]
        assert 0.0 <= run["best_test_acc"] <= 1.0
        assert run["cpk_bytes"] > 0 and run["ratio_float32"] > 1.0
