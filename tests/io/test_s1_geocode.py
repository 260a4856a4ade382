"""eominer.io.s1_geocode on the real tie points of an S1A IW GRDH annotation (210 points,
descending pass): the spline against scipy's, its Jacobian and inverse, and a geocoded
block of real backscatter against GDAL's exact warp (tolerance 0) with the same spline."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.transform import Affine
from rasterio.warp import Resampling, reproject

from eominer.io import s1_safe
from eominer.io.discover import discover
from eominer.io.s1_geocode import (
    ThinPlateSpline,
    TiePointSpline,
    block_coords,
    image_window,
    resample,
)
from tests.io.test_s1_safe import NAME, make_safe


@pytest.fixture(scope="module")
def geo(shared_data: Path) -> s1_safe.Geolocation:
    with zipfile.ZipFile(shared_data / "s1_grd_metadata" / f"{NAME}.zip") as z:
        xml = next(z.read(n) for n in z.namelist()
                   if "/annotation/s1a-iw-grd-vv-" in n and n.endswith(".xml"))
    return s1_safe.read_geolocation(xml)


def test_the_spline_is_scipys_thin_plate_spline(geo):
    from scipy.interpolate import RBFInterpolator

    rc = np.c_[geo.rows, geo.cols]
    xy = np.c_[geo.xs, geo.ys] - np.c_[geo.xs, geo.ys].mean(0)
    mine = ThinPlateSpline(rc, xy)
    ref = RBFInterpolator(rc, xy, kernel="thin_plate_spline", degree=1)
    pts = np.random.default_rng(0).random((2000, 2)) * [geo.lines, geo.samples]
    np.testing.assert_allclose(mine(pts), ref(pts), atol=1e-6)  # metres
    np.testing.assert_allclose(mine(rc), xy, atol=1e-6)  # through every tie point
    # the Jacobian against central differences of the values
    h = 1e-3
    _, jac = mine.with_jacobian(pts[:50])
    for j, d in enumerate(([h, 0.0], [0.0, h])):
        fd = (mine(pts[:50] + d) - mine(pts[:50] - d)) / (2 * h)
        np.testing.assert_allclose(jac[:, :, j], fd, atol=1e-5)


def test_rowcol_inverts_the_forward_spline_not_the_reverse_one(geo):
    """The spline fitted UTM -> image (the first guess) is not the forward one's inverse:
    on this product's tie points they part by more than a pixel in places."""
    sp = TiePointSpline(geo.rows, geo.cols, geo.xs, geo.ys)
    rng = np.random.default_rng(1)
    rows, cols = rng.random(3000) * geo.lines, rng.random(3000) * geo.samples
    xs, ys = sp.xy(rows, cols)
    r, c = sp.rowcol(xs, ys)
    assert np.abs(r - rows).max() < 1e-5 and np.abs(c - cols).max() < 1e-5
    guess = sp._guess(np.c_[xs, ys])
    assert np.abs(guess - np.c_[rows, cols]).max() > 1.0


def test_the_coarse_grid_is_within_a_tenth_of_a_pixel(geo):
    """Each block inverts the spline every STEP pixels and interpolates between: on the
    full-size product's grid, against the exact inverse at 300 random pixels of 4 blocks."""
    grid = s1_safe.geocoded_grid(geo)
    sp = TiePointSpline(geo.rows, geo.cols, geo.xs, geo.ys)
    a, _, c0, _, e, f0 = grid.transform[:6]
    rng = np.random.default_rng(2)
    worst = 0.0
    for x_off, y_off in ((0, 0), (grid.width // 2, grid.height // 2), (8192, 14336),
                         (grid.width - 2048, grid.height - 2048)):
        coords = block_coords(sp, grid.transform, (x_off, y_off, 2048, 2048))
        pr, pc = rng.integers(0, 2048, 300), rng.integers(0, 2048, 300)
        r, c = sp.rowcol(c0 + a * (x_off + pc + 0.5), f0 + e * (y_off + pr + 0.5))
        worst = max(worst, np.abs(coords[0, pr, pc] - r).max(),
                    np.abs(coords[1, pr, pc] - c).max())
    print(f"largest interpolation error {worst:.3f} px")
    assert worst < 0.1


def test_resample_gives_missing_neighbours_weight_to_the_others():
    power = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0], [7.0, 8.0, 9.0]], np.float32)
    # pixel-corner coordinates: a centre at index + 0.5
    coords = np.array([[[0.5, 1.0, 1.5, 0.75, 5.0]], [[0.5, 1.0, 1.5, 0.5, 1.0]]])
    out = resample(power, coords, 0, 0, 3, 3)
    assert out[0, 0] == 1.0  # on a centre
    assert out[0, 1] == pytest.approx((1 + 2 + 4) / 3)  # the missing one's weight shared
    assert np.isnan(out[0, 2])  # on the missing centre: every weight on it
    assert out[0, 3] == pytest.approx(0.75 * 1 + 0.25 * 4)
    assert np.isnan(out[0, 4])  # outside the image


def test_a_block_equals_gdals_exact_warp(s1_safe_dir_geo, monkeypatch):
    """A 384 px block of the real-backscatter crop: this module against GDAL's warp with
    the exact transformer through the same spline (what GDAL approximates to 0.125 px
    by default): the same valid pixels, 0.01 dB apart on average."""
    product, grid, geo = s1_safe_dir_geo
    win = (grid.width // 2 - 192, grid.height // 2 - 192, 384, 384)
    monkeypatch.setattr(s1_safe, "_blocks", lambda g, rows=None: iter([win]))
    ((got_win, got),) = list(s1_safe.geocode(product, "VV", grid))
    sp = TiePointSpline(geo.rows, geo.cols, geo.xs, geo.ys)
    r0, r1, s0, s1 = image_window(block_coords(sp, grid.transform, win), geo.lines,
                                  geo.samples, margin=16)
    safe = s1_safe._safe(product)
    cal = s1_safe.read_calibration(safe.read(product.extra["VV.calibration"]))
    noise = s1_safe.read_noise(safe.read(product.extra["VV.noise"]))
    with rasterio.open(product.bands["VV"].path) as src:
        dn = src.read(1, window=rasterio.windows.Window(s0, r0, s1 - s0, r1 - r0))
    power = s1_safe.sigma0(dn, r0, s0, cal, noise)
    gcps = [GroundControlPoint(row=r - r0, col=c - s0, x=x, y=y)
            for r, c, x, y in zip(geo.rows, geo.cols, geo.xs, geo.ys)]
    a, _, c0, _, e, f0 = grid.transform[:6]
    ref = np.full((384, 384), np.nan, np.float32)
    reproject(power, ref, gcps=gcps, src_crs=grid.crs_wkt, src_nodata=np.nan,
              dst_crs=grid.crs_wkt, dst_nodata=np.nan, resampling=Resampling.bilinear,
              dst_transform=Affine(a, 0.0, c0 + a * win[0], 0.0, e, f0 + e * win[1]),
              SRC_METHOD="GCP_TPS", XSCALE="1", YSCALE="1", tolerance=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = 10 * np.log10(ref)
    assert got_win == win
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    diff = np.abs(got - ref)[np.isfinite(ref)]
    print(f"|diff| dB: mean {diff.mean():.4f}, p99 {np.percentile(diff, 99):.3f}")
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.1


@pytest.fixture(scope="module")
def s1_safe_dir_geo(tmp_path_factory, shared_data: Path):
    safe = make_safe(tmp_path_factory.mktemp("s1geo"), shared_data, shared_data / "bigearthnet")
    (product,) = discover(safe)
    geo = s1_safe.read_geolocation(s1_safe._safe(product).read(product.extra["VV.annotation"]))
    return product, s1_safe.product_grid(product), geo
