"""Pictures of the masks: report --plot's masks figure, the per-pixel density, IMP's iterations figure."""

from pathlib import Path

import numpy as np
import pytest

from connpack import compare, maskplot
from connpack.errors import SpecError
from tests.conftest import run_cli

VECTORS = Path(__file__).resolve().parents[1] / "formats" / "vectors"
PNG = b"\x89PNG\r\n\x1a\n"


def test_report_plot_writes_the_bits_and_the_masks_figures(runner, tmp_path):
    png = tmp_path / "r.png"
    r = run_cli(runner, "report", VECTORS / "net_mask.cpk", "--plot", png)
    assert r.exit_code == 0, r.stderr
    masks = tmp_path / "r.masks.png"
    for path in (png, masks):
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 5000
        assert f"wrote {path}" in r.stdout
    assert "Jaccard" not in r.stdout and "÷ bound ↓" in r.stdout and "lower is better" in r.stdout


def test_first_layer_density_per_pixel_is_the_mean_over_units_and_channels():
    desc = compare.load(VECTORS / "net_mask.cpk")
    bits = desc.tensors["fc1.weight"].bits
    image = maskplot.pixel_density(bits, (1, 8, 8))
    assert image.shape == (8, 8) and np.array_equal(image, bits.mean(axis=0).reshape(8, 8))
    two = np.ones((3, 2 * 4 * 5), dtype=bool)
    two[:, 0] = False  # channel 0, pixel (0, 0): no connection left; channel 1 keeps it
    image = maskplot.pixel_density(two, (2, 4, 5))
    assert image[0, 0] == 0.5 and (image.reshape(-1)[1:] == 1).all()
    assert maskplot.pixel_density(two, (40,)) is None  # not an image
    assert maskplot.pixel_density(np.ones((3, 2, 3, 3), dtype=bool), (2, 4, 5)) is None  # a conv layer
    assert np.array_equal(maskplot.unit_density(two), [39 / 40] * 3)


def test_iterations_figure_needs_two_masks_and_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    its = [{"fc1.weight": rng.random((20, 30)) < d, "fc2.weight": rng.random((5, 20)) < d} for d in (1.0, 0.8, 0.64)]
    size = maskplot.iterations_figure(its, tmp_path / "it.png")
    assert size == len((tmp_path / "it.png").read_bytes()) > 5000
    assert (tmp_path / "it.png").read_bytes()[:8] == PNG
    with pytest.raises(SpecError, match="at least two"):
        maskplot.iterations_figure(its[:1], tmp_path / "one.png")
    assert maskplot.jaccard_distance(its[0]["fc1.weight"], its[0]["fc1.weight"]) == 0.0
