"""The app's pieces that need no browser: the overlay's bytes, the top results, patch
reads for thumbnails, the outline columns, and `eominer serve`'s option checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest


def small_grid():
    from eominer.ui.layers import PatchGrid

    # a 2 x 3 grid; cells 0, 2, 4 and 5 hold session rows 3, 0, 1, 2 (cell 1, 3: none)
    return PatchGrid("P", 10, 2, 3, (0.0, 0.0, 30.0, 20.0),
                     session_rows=np.array([3, 0, 1, 2]), flat=np.array([0, 2, 4, 5]),
                     patch_ids=np.array([13, -1, 10, -1, 11, 12]))


def test_levels_are_one_byte_per_patch_and_zero_where_no_score():
    g = small_grid()
    scores = np.array([0.0, 0.5, 1.0, 0.25], np.float32)
    lv = g.levels(scores)
    assert lv.dtype == np.uint8 and lv.shape == (2, 3)
    # cell 0 <- row 3 (0.25), cell 2 <- row 0 (0.0), cell 4 <- row 1, cell 5 <- row 2
    assert lv.tolist() == [[65, 0, 1], [0, 128, 255]]
    assert not g.levels(None).any()


def test_levels_clip_out_of_range_and_nan_scores():
    g = small_grid()
    lv = g.levels(np.array([-3.0, np.nan, 7.0, 0.5], np.float32))
    assert lv.ravel()[[2, 4, 5, 0]].tolist() == [1, 1, 255, 128]


def test_top_rows_match_a_full_sort():
    from eominer.ui.state import top_rows

    rng = np.random.default_rng(3)
    scores = rng.random(100_000).astype(np.float32)
    assert top_rows(scores, 40).tolist() == np.argsort(-scores, kind="stable")[:40].tolist()
    assert top_rows(scores[:5], 40).tolist() == np.argsort(-scores[:5])[:5].tolist()
    assert top_rows(np.empty(0, np.float32), 40).size == 0


def test_read_windows_pads_outside_the_raster_with_nodata(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from eominer.ui.thumbnails import read_windows

    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30) + 1
    path = tmp_path / "ard.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=3,
                       dtype="uint16", transform=from_origin(0, 200, 10, 10)) as ds:
        ds.write(data)
    inside, corner = read_windows(str(path), [3, 1], [(5, 4, 8), (26, -2, 6)])
    assert np.array_equal(inside, data[[2, 0], 4:12, 5:13])
    assert corner.shape == (2, 6, 6)
    assert np.array_equal(corner[:, 2:, :4], data[[2, 0], 0:4, 26:30])
    assert not corner[:, :2, :].any() and not corner[:, :, 4:].any()


def test_read_windows_names_a_missing_file(tmp_path):
    from eominer.errors import ProductReadError
    from eominer.ui.thumbnails import read_windows

    with pytest.raises(ProductReadError, match=r"gone\.tif is missing: re-ingest"):
        read_windows(str(tmp_path / "gone.tif"), [1], [(0, 0, 4)])


def small_product(tmp_path, bands=("B02", "B03", "B04"), sensor="S2"):
    """A 30 x 20 px product on disk (10 m pixels, upper-left at (0, 200))."""
    import rasterio
    from rasterio.transform import from_origin

    from eominer.store import Product

    data = np.arange(len(bands) * 20 * 30, dtype=np.uint16).reshape(len(bands), 20, 30) + 1
    path = tmp_path / "ard.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=len(bands),
                       dtype="uint16", transform=from_origin(0, 200, 10, 10)) as ds:
        ds.write(data)
    product = Product(product_id="P", sensor=sensor, crs="EPSG:32633", footprint_wkt="",
                      source_path="/src/P", ard_path=str(path), width=30, height=20,
                      bands=bands, transform=(10.0, 0.0, 0.0, 0.0, -10.0, 200.0))
    return product, data


def test_views_of_a_product_record(tmp_path):
    from eominer.errors import ProductReadError
    from eominer.ui.layers import colour_bands, product_bounds, read_view

    product, data = small_product(tmp_path)
    assert product_bounds(product) == (0.0, 0.0, 300.0, 200.0)
    assert colour_bands(product, False) == [3, 2, 1]
    with pytest.raises(ProductReadError, match=r"P lacks band\(s\) B08 for the false-colour"):
        colour_bands(product, True)
    view, bounds = read_view(product, [3, 1], (100.0, 200.0), (50.0, 150.0))
    assert np.array_equal(view, data[[2, 0], 5:15, 10:20])
    assert bounds == (100.0, 50.0, 200.0, 150.0)
    (tmp_path / "s1").mkdir()
    sar, _ = small_product(tmp_path / "s1", bands=("VV", "VH"), sensor="S1")
    assert colour_bands(sar, True) == [1, 2, 1]


def test_outline_columns_carry_colour_strings():
    from eominer.ui.mapview import _rect_data

    rects = [(0.0, 1.0, 2.0, 3.0, "#00c853"), (4.0, 5.0, 6.0, 7.0, "#ff1744")]
    data = _rect_data(rects, ["left", "bottom", "right", "top", "line_color"])
    assert data == {"left": [0.0, 4.0], "bottom": [1.0, 5.0], "right": [2.0, 6.0],
                    "top": [3.0, 7.0], "line_color": ["#00c853", "#ff1744"]}


@pytest.mark.parametrize(("args", "message"), [
    (["--basic-auth", "users.json", "--oauth-provider", "generic"], "exclude each other"),
    (["--oauth-provider", "generic", "--oauth-extra-params", "{TOKEN_URL: x}"],
     r"--oauth-extra-params.*not JSON"),
])
def test_serve_refuses_bad_auth_options(args, message, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from eominer.cli.serve import serve

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path))
    (tmp_path / "users.json").write_text(json.dumps({"ana": "pw"}))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(serve, ["--db", f"duckdb:///{tmp_path / 'x.duckdb'}",
                                        "--no-show", *args])
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output


def test_app_says_so_when_a_batch_job_holds_the_database(tmp_path):
    """DuckDB has one writer per file: while another process holds it, the app shows a
    page saying what is wrong and what to do, instead of failing."""
    import subprocess
    import sys

    from eominer.ui.app import App

    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        app = App(db=f"duckdb:///{db}")
        assert app.error is not None
        assert "holds it for writing; wait for it to finish" in app.error
        page = app.__panel__()
        alert = page.objects[0]
        assert "The database cannot be opened" in alert.object
        assert "Nothing you labelled is lost" in alert.object
    finally:
        holder.kill()
        holder.wait()
