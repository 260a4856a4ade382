"""`spectral` on real Bordeaux bands: statistics and indices per patch."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.features import build
from eominer.features.spectral import normalised_difference

BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture
def stack(bordeaux) -> np.ndarray:
    return np.stack([bordeaux[b][:192, :256] for b in BANDS])


def test_columns_and_indices_follow_the_bands():
    d = build("spectral", BANDS)
    assert d.columns[:5] == ("b02_mean", "b02_std", "b02_p10", "b02_p50", "b02_p90")
    # NDBI, MNDWI, NBR and NDRE need SWIR / red-edge bands this product lacks
    assert [c for c in d.columns if c.endswith("_mean") and not c.startswith("b")] == [
        "ndvi_mean", "ndwi_mean"]
    full = build("spectral", ["B02", "B03", "B04", "B05", "B08", "B8A", "B11", "B12"])
    assert {"ndbi_mean", "mndwi_mean", "nbr_mean", "ndre_mean"} <= set(full.columns)


def test_patch_values_equal_numpy_on_the_window(stack, grid_windows):
    d = build("spectral", BANDS)
    w = grid_windows(192, 256, sizes=(32, 64))
    X = d.compute(stack, w)
    col = {c: i for i, c in enumerate(d.columns)}
    i = 17
    y, x, s, _ = w[i]
    b04, b08 = stack[2, y:y + s, x:x + s], stack[3, y:y + s, x:x + s]
    assert X[i, col["b04_mean"]] == pytest.approx(b04.mean(), rel=1e-5)
    assert X[i, col["b04_std"]] == pytest.approx(b04.std(), rel=1e-3)
    assert X[i, col["b08_p90"]] == pytest.approx(np.percentile(b08, 90), rel=1e-5)
    assert X[i, col["ndvi_mean"]] == pytest.approx(((b08 - b04) / (b08 + b04)).mean(), rel=1e-4)
    # Bordeaux in May: vegetation somewhere, so NDVI spans a real range
    assert X[:, col["ndvi_mean"]].max() > 0.3 and X[:, col["ndvi_mean"]].min() < 0.2


def test_nan_reflectance_never_gives_nan_features(stack, grid_windows):
    s = stack.copy()
    s[:, :32, :32] = np.nan          # a whole nodata patch
    s[2, 40:45, :] = np.nan          # a nodata stripe in one band
    d = build("spectral", BANDS)
    w = grid_windows(192, 256, sizes=(32, 64))
    X = d.compute(s, w)
    assert np.isfinite(X).all()
    first = (w[:, 0] == 0) & (w[:, 1] == 0) & (w[:, 2] == 32)
    assert np.all(X[first] == 0)


def test_normalised_difference_is_nan_where_undefined():
    out = normalised_difference(np.array([0.0, 0.3], np.float32),
                                np.array([0.0, 0.1], np.float32))
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.5)
