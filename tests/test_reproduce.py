"""Each reproduction script runs end to end at its smallest setting and writes JSON + PNG with accuracies and
description lengths."""

import importlib
import json

import pytest


def _runs(name, results):
    """The trained networks' rows of each script's JSON, as (accuracy, bytes, ratio to float32)."""
    if name in ("ivan_florian_table1", "ivan_florian_fig4"):
        return [
            (e["runs"][0]["best_test_acc"], e["runs"][0]["cpk_bytes"], e["runs"][0]["ratio_float32"])
            for e in results.values()
        ]
    if name == "edgepopup_fig3":
        return [
            (e["runs"][0]["best_test_acc"], e["runs"][0]["cpk_bytes"], e["runs"][0]["ratio_float32"])
            for by_k in results.values()
            for e in by_k.values()
        ]
    if name == "asni_table2":
        return [
            (e["accuracy"]["A"], e["sizes"]["init"]["bytes"], e["sizes"]["init"]["ratio_float32"])
            for e in results.values()
        ]
    if name == "fig4_p001_probe":  # no network kept; the float32 LeNet is 266,200 x 4 bytes
        return [(e["best_test_acc"], 1, 2.0) for e in results.values()]
    if name == "imp_lenet300":
        return [
            (e["accuracy"][-1], e["ticket_bytes"][-1], 32 / e["ticket_bits_per_weight"][-1]) for e in results.values()
        ]
    return [(e["accuracy"][-1], e["ticket_bytes"], e["ticket_ratio_float32"]) for e in results.values()]


NAMES = [
    "ivan_florian_table1",
    "ivan_florian_fig4",
    "fig4_p001_probe",
    "asni_table2",
    "imp_table2",
    "imp_lenet300",
    "edgepopup_fig3",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Each script run once at its smallest setting; name -> (returned results, output folder)."""
    out = tmp_path_factory.mktemp("smoke")
    extra = {"imp_lenet300": ["--work", str(out / "imp_work")]}
    return {
        name: importlib.import_module(f"benchmarks.reproduce.{name}").main(
            ["--smoke", "--out", str(out), "--device", "cpu", *extra.get(name, [])]
        )
        for name in NAMES
    }, out


@pytest.mark.parametrize("name", NAMES)
def test_reproduction_script_smoke(smoke, name):
    all_results, tmp_path = smoke
    results = all_results[name]
    payload = json.loads((tmp_path / f"{name}_smoke.json").read_text())
    assert (tmp_path / f"{name}_smoke.png").stat().st_size > 1000
    assert payload["results"].keys() == results.keys() and results
    rows = _runs(name, payload["results"])
    assert rows
    for acc, size, ratio in rows:
        assert 0.0 <= acc <= 1.0 and size > 0 and ratio > 1.0


def test_results_page_renders_every_section(smoke, tmp_path):
    from benchmarks.reproduce import results_page

    assert [n for n, _ in results_page.SECTIONS] == NAMES
    for name in NAMES:
        (tmp_path / f"{name}.json").write_text((smoke[1] / f"{name}_smoke.json").read_text())
    page = results_page.render(tmp_path)
    assert "Not run" not in page
    for title in ("Table 1", "Fig. 4", "p = 0.01", "ASNI", "IMP", "LeNet-300-100 — the lottery-ticket", "edge-popup"):
        assert title in page
    assert "| free flipping | 98.14 |" in page
