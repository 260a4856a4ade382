"""Time series of one place on the real eo-learn TestEOPatch (68 Sentinel-2 dates over
Slovenia, 2015-07 to 2017-12, with its cloud masks and NDVI).

The breaks are PLANTED: the NDVI of a 20 x 20 px block is set to a bare-soil value
(0.15) from a given date on; the rest of the series is real.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eominer.change.timeseries import (
    REASONS,
    TEMPORAL_COLUMNS,
    column_median,
    day_numbers,
    design,
    largest_break,
    patch_descriptors,
    patch_series,
    seasonal_curve,
    temporal_descriptors,
)
from eominer.errors import ConfigError

BARE_SOIL_NDVI = 0.15
BLOCK = (slice(40, 60), slice(40, 60))


@pytest.fixture(scope="module")
def series(shared_data: Path):
    root = shared_data / "eolearn_testeopatch" / "TestEOPatch"
    ndvi = np.load(root / "data" / "NDVI.npy")[..., 0]
    clear = (np.load(root / "mask" / "IS_VALID.npy")[..., 0]
             & (np.load(root / "mask" / "CLM.npy")[..., 0] == 0))
    dates = json.loads((root / "timestamps.json").read_text())
    lulc = np.load(root / "mask_timeless" / "LULC.npy")[..., 0]
    assert ndvi.shape == clear.shape == (68, 101, 100)
    return ndvi, clear, day_numbers(dates), lulc


def clear_steps(clear_col: np.ndarray, found: float, tau: int) -> int:
    """Error in acquisitions: clear dates between the found date and the first clear
    date on or after the planted one (the first date the break can be seen)."""
    dates = np.flatnonzero(clear_col)
    first = dates[dates >= tau][0]
    return int(np.searchsorted(dates, int(found)) - np.searchsorted(dates, first))


@pytest.mark.parametrize("tau", [20, 44, 48])  # 2016-06-05, 2017-06-20, 2017-07-20
def test_planted_break_is_found_at_its_date_and_size(series, tau) -> None:
    ndvi, clear, days, _ = series
    planted = ndvi.copy()
    planted[tau:, BLOCK[0], BLOCK[1]] = BARE_SOIL_NDVI
    b = largest_break(planted[:, BLOCK[0], BLOCK[1]], clear[:, BLOCK[0], BLOCK[1]], days)
    c = clear[:, BLOCK[0], BLOCK[1]]
    found = b.found
    assert found.mean() >= 0.98, found.mean()
    errors = np.array([clear_steps(c[:, i, j], b.index[i, j], tau)
                       for i, j in zip(*np.nonzero(found))])
    # the true size: bare soil minus what the pixel's NDVI was after tau
    true = np.array([BARE_SOIL_NDVI - ndvi[tau:, 40 + i, 40 + j][c[tau:, i, j]].mean()
                     for i, j in zip(*np.nonzero(found))])
    size_err = np.abs(b.size[found] - true)
    print(f"break planted at date {tau}: found {found.mean():.1%}, date error (clear "
          f"acquisitions) {np.unique(errors, return_counts=True)}, size "
          f"{np.median(b.size[found]):.3f} vs true {np.median(true):.3f}, |error| median "
          f"{np.median(size_err):.3f}")
    assert np.mean(np.abs(errors) <= 1) >= 0.97
    assert np.median(size_err) < 0.1 and np.all(b.size[found] < -0.2)
    assert np.all(b.reason[found] == "")


def test_a_winter_break_is_located_within_the_winter(series) -> None:
    """Planted on 2017-04-01 (date 37): vegetation NDVI is still near bare soil after the
    winter, so the break is located within the last winter dates: within 2 clear
    acquisitions for all pixels (measured: 56 % within 1)."""
    ndvi, clear, days, _ = series
    planted = ndvi.copy()
    planted[37:, BLOCK[0], BLOCK[1]] = BARE_SOIL_NDVI
    b = largest_break(planted[:, BLOCK[0], BLOCK[1]], clear[:, BLOCK[0], BLOCK[1]], days)
    c = clear[:, BLOCK[0], BLOCK[1]]
    errors = np.array([clear_steps(c[:, i, j], b.index[i, j], 37)
                       for i, j in zip(*np.nonzero(b.found))])
    assert b.found.mean() == 1.0
    assert np.all(np.abs(errors) <= 2)


def test_real_pixels_without_a_planted_break_report_none(series) -> None:
    """The real series: F > 30 and a size of at least 0.2 NDVI flag 1.3 % of the 10,100
    pixels (some may be real changes; there are no labels to say); the pixels of the
    block above, unplanted, report no break."""
    ndvi, clear, days, lulc = series
    b = largest_break(ndvi, clear, days)
    rate = float(b.found.mean())
    print(f"real series, no planted break: {rate:.2%} of pixels report a break")
    assert rate < 0.02
    assert not b.found[BLOCK].any()
    assert np.all(np.isnan(b.index[~b.found])) and np.all(b.reason[~b.found] == "no break")
    assert np.isfinite(b.stat[BLOCK]).all()  # the statistic is still reported


def test_too_few_clear_dates_give_nan_and_a_reason(series) -> None:
    ndvi, clear, days, _ = series
    col = ndvi[:, 50, 50:53].copy()
    ok = clear[:, 50, 50:53].copy()
    ok[:, 0] = False
    ok[np.flatnonzero(clear[:, 50, 50])[:2], 0] = True  # 2 clear dates
    ok[:, 1] &= np.cumsum(ok[:, 1]) <= 8  # 8 clear dates: no seasonal model
    td = temporal_descriptors(col, ok, days)
    assert list(td.reason) == [REASONS[1], REASONS[2], ""]
    assert np.isnan(td.mean[0]) and np.isfinite(td.mean[1]) and np.isnan(td.amplitude[1])
    assert np.isfinite(td.amplitude[2])
    b = largest_break(col, ok, days)
    assert list(b.reason[:2]) == [REASONS[1], REASONS[2]] and np.isnan(b.index[:2]).all()
    m = td.matrix()
    assert m.shape == (3, len(TEMPORAL_COLUMNS)) and list(m[:, -1]) == [1, 2, 0]
    with pytest.raises(ConfigError, match="at least 3 dates"):
        temporal_descriptors(col[:2], ok[:2], days[:2])


def test_temporal_descriptors_of_a_real_pixel_equal_a_hand_computation(series) -> None:
    ndvi, clear, days, _ = series
    y, ok = ndvi[:, 30, 70], clear[:, 30, 70]
    td = temporal_descriptors(y[:, None], ok[:, None], days, robust=False)
    # by hand: least squares of 1, t (years from the middle), cos/sin of 1 and 2 cycles
    # a year (phase from 1 January 2015) on the clear dates
    d = days[ok]
    t = (d - 0.5 * (days.min() + days.max())) / 365.25
    w = 2 * np.pi * d / 365.25
    A = np.stack([np.ones_like(d), t, np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w)], 1)
    coef, *_ = np.linalg.lstsq(A, y[ok].astype(np.float64), rcond=None)
    doy = np.arange(365)  # days since 1 January
    s = sum(coef[2 + 2 * k] * np.cos(2 * np.pi * (k + 1) * doy / 365.25)
            + coef[3 + 2 * k] * np.sin(2 * np.pi * (k + 1) * doy / 365.25) for k in range(2))
    assert td.mean[0] == pytest.approx(coef[0], abs=1e-6)
    assert td.trend[0] == pytest.approx(coef[1], abs=1e-6)
    assert td.amplitude[0] == pytest.approx((s.max() - s.min()) / 2, abs=1e-6)
    assert td.peak_doy[0] == int(np.argmax(s)) + 1
    assert td.n_clear[0] == ok.sum()
    print(f"pixel (30, 70): mean {coef[0]:.3f}, trend {coef[1]:.4f}/yr, amplitude "
          f"{(s.max() - s.min()) / 2:.3f}, peak day {int(np.argmax(s)) + 1}")
    # a vegetated pixel peaks in summer
    assert 120 < td.peak_doy[0] < 260 and 0.1 < td.amplitude[0] < 0.6


def test_robust_fit_ignores_a_missed_cloud(series) -> None:
    ndvi, clear, days, _ = series
    y, ok = ndvi[:, 30, 70].copy(), clear[:, 30, 70]
    ref = temporal_descriptors(y[:, None], ok[:, None], days)
    plain_ref = temporal_descriptors(y[:, None], ok[:, None], days, robust=False)
    summer = [i for i in np.flatnonzero(ok) if 150 < days[i] % 365.25 < 230][::2][:3]
    y[summer] = 0.0  # three cloudy dates the cloud mask missed (NDVI of cloud ~0)
    robust = temporal_descriptors(y[:, None], ok[:, None], days)
    plain = temporal_descriptors(y[:, None], ok[:, None], days, robust=False)
    moved = abs(robust.amplitude[0] - ref.amplitude[0])
    plain_moved = abs(plain.amplitude[0] - plain_ref.amplitude[0])
    print(f"3 missed clouds move the amplitude by {moved:.3f} (robust), "
          f"{plain_moved:.3f} (least squares)")
    assert moved < 0.02 and plain_moved > 3 * moved


def test_patch_series_and_patch_descriptors(series) -> None:
    ndvi, clear, days, _ = series
    v, ok = patch_series(ndvi, clear, 10)
    assert v.shape == ok.shape == (68, 10, 10)
    block = np.where(clear[:, :10, :10], ndvi[:, :10, :10], np.nan).reshape(68, -1)
    share = np.isfinite(block).mean(axis=1)
    assert np.array_equal(ok[:, 0, 0], share >= 0.5)
    assert np.allclose(v[ok[:, 0, 0], 0, 0], np.nanmedian(block[share >= 0.5], axis=1))
    m = patch_descriptors(ndvi, clear, days, np.array([0, 50]), np.array([0, 40]),
                          np.array([10, 20]))
    assert m.shape == (2, len(TEMPORAL_COLUMNS)) and m.dtype == np.float32
    one = temporal_descriptors(v[:, 0, 0][:, None], ok[:, 0, 0][:, None], days).matrix()
    assert np.allclose(m[0], one[0], equal_nan=True)


def test_helpers() -> None:
    a = np.array([[1.0, np.nan, 3.0], [2.0, np.nan, np.nan], [10.0, np.nan, 5.0]])
    med = column_median(a)
    assert med[0] == 2.0 and np.isnan(med[1]) and med[2] == 4.0
    days = day_numbers(["2015-01-01T00:00:00", "2015-12-31T12:00:00", "2016-01-01"])
    assert list(days) == [0.0, 364.5, 365.0]
    X = design(days)
    assert X.shape == (3, 6) and np.allclose(X[:, 0], 1)
    coef = np.array([[0.5, 0.0, 1.0, 0.0, 0.0, 0.0]])
    curve = seasonal_curve(coef)
    assert curve.shape == (1, 365) and np.argmax(curve[0]) == 0  # cos peaks on 1 January
