"""eominer.ui.webmercator without a browser: two products in neighbouring UTM zones (32N
and 33N, either side of 12 degrees east) on one EPSG:3857 map; every expected value is
computed here independently, with pyproj and shapely."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest

LEVEL = 8  # px per patch; 10 m pixels -> 80 m patches


def product_and_grid(pid: str, epsg: int, x0: float, y0: float, rows: int, cols: int,
                     first_id: int, session_every: int = 1):
    """A product record in UTM zone `epsg` whose upper-left corner is (x0, y0), tiled
    at LEVEL into rows x cols patches with ids first_id + cell (row-major); every
    `session_every`-th patch is in the session."""
    from eominer.store import Product
    from eominer.ui.layers import PatchGrid

    transform = (10.0, 0.0, x0, 0.0, -10.0, y0)
    product = Product(product_id=pid, sensor="S2", crs=f"EPSG:{epsg}", footprint_wkt="",
                      source_path="/src", ard_path="/none.tif", width=cols * LEVEL,
                      height=rows * LEVEL, bands=("B02", "B03", "B04"), transform=transform)
    ids = first_id + np.arange(rows * cols)
    flat = np.arange(0, rows * cols, session_every)
    grid = PatchGrid(pid, LEVEL, rows, cols,
                     (x0, y0 - rows * LEVEL * 10.0, x0 + cols * LEVEL * 10.0, y0),
                     session_rows=np.arange(len(flat)), flat=flat, patch_ids=ids)
    return product, grid


@pytest.fixture(scope="module")
def two_zones():
    from pyproj import Transformer

    from eominer.ui.webmercator import mercator_layer

    # 32N near its eastern edge (12 E at 53 N), and 33N starting 500 m east of it
    a = product_and_grid("UTM32", 32632, 700_000.0, 5_880_000.0, 40, 50, 1000)
    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(704_000.0,
                                                                           5_880_000.0)
    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(lon, lat)
    b = product_and_grid("UTM33", 32633, round(x) + 500.0, round(y) + 600.0, 30, 60, 5000, 3)
    return [mercator_layer(*a), mercator_layer(*b)]


@functools.lru_cache
def to_3857(crs: str):
    from pyproj import Transformer

    return Transformer.from_crs(crs, "EPSG:3857", always_xy=True)


def centre_3857(layer, cell: int) -> tuple[float, float]:
    """A grid cell's centre in 3857 from the product's own transform, with pyproj."""
    a, _, x0, _, e, y0 = layer.product.transform
    r, c = divmod(cell, layer.grid.cols)
    px = x0 + (c + 0.5) * LEVEL * a
    py = y0 + (r + 0.5) * LEVEL * e
    return to_3857(layer.product.crs).transform(px, py)


def test_the_index_map_sends_each_patch_centre_to_that_patch(two_zones):
    rng = np.random.default_rng(0)
    for lay in two_zones:
        h, w = lay.shape
        lf, b, r, t = lay.bounds
        cells = rng.choice(lay.grid.rows * lay.grid.cols, 60, replace=False)
        for cell in cells.tolist():
            x, y = centre_3857(lay, cell)
            col = int((x - lf) / (r - lf) * w)
            row = int((y - b) / (t - b) * h)  # from the bottom: Bokeh's order
            assert lay.index[row * w + col] == cell, (lay.product_id, cell)
        # about one 3857 pixel per patch, and nothing outside the grid maps to a cell
        assert 0.5 < (lay.index < lay.pad).sum() / (lay.grid.rows * lay.grid.cols) < 2.0


def test_two_utm_zones_both_appear_in_their_place(two_zones):
    from pyproj import Transformer

    from eominer.ui.webmercator import to_lonlat

    a, b = two_zones
    assert a.bounds[0] < b.bounds[0] and a.bounds[2] < b.bounds[0] + 2_000  # side by side
    for lay in two_zones:
        lf, bt, r, t = lay.bounds
        x0, _, _, y0 = lay.grid.bounds
        lon, lat = Transformer.from_crs(lay.product.crs, "EPSG:4326",
                                        always_xy=True).transform(x0, y0)
        import shapely

        box = to_lonlat(shapely.box(lf, bt, r, t))
        assert box.buffer(1e-6).contains(shapely.Point(lon, lat))
    # both overlays carry their session patches' scores
    scores_a = np.full(len(a.grid.flat), 0.5, np.float32)
    scores_b = np.linspace(0, 1, len(b.grid.flat), dtype=np.float32)
    lv_a, lv_b = a.levels(scores_a), b.levels(scores_b)
    assert lv_a.shape == a.shape and lv_b.shape == b.shape
    assert set(np.unique(lv_a)) == {0, 128}
    assert lv_b.max() == 255 and (lv_b > 0).sum() > 0.5 * len(b.grid.flat)
    # a patch outside the session (b holds every third) stays transparent
    x, y = centre_3857(b, 1)
    lf, bt, r, t = b.bounds
    h, w = b.shape
    assert lv_b[int((y - bt) / (t - bt) * h), int((x - lf) / (r - lf) * w)] == 0


def test_a_click_at_a_patch_centre_gives_that_patch(two_zones):
    for lay in two_zones:
        for cell in (0, 7, lay.grid.rows * lay.grid.cols - 1):
            x, y = centre_3857(lay, cell)
            assert lay.patch_at(x, y) == int(lay.grid.patch_ids[cell])
    a, b = two_zones
    assert a.patch_at(*centre_3857(b, 0)) is None  # b's patch is not in a's grid
    assert b.patch_at(0.0, 0.0) is None


def test_the_hover_names_the_patch_a_click_names_anywhere_in_it(two_zones):
    """The browser's hover evaluates `GridPolynomial` (no pyproj there); a click goes
    through pyproj (`patch_at`). At 200,000 random points of each product, and of a
    whole 110 km tile at 72 N, both name the same grid cell. The id image that the hover
    read before (~1.25 px a patch) named a neighbour at ~30 % of such points."""
    from eominer.ui.webmercator import mercator_layer

    tile = mercator_layer(*product_and_grid("T33", 32633, 699_960.0, 8_000_040.0,
                                            1372, 1372, 0))
    rng = np.random.default_rng(1)
    for lay in [*two_zones, tile]:
        poly = lay.polynomial
        assert poly.error < 1e-4, (lay.product_id, poly.degree, poly.error)
        lf, b, r, t = lay.bounds
        x, y = rng.uniform(lf, r, 200_000), rng.uniform(b, t, 200_000)
        want = lay.cell_at(x, y)  # pyproj
        c, rw = poly.grid_at(x, y)
        inside = (c >= 0) & (c < lay.grid.cols) & (rw >= 0) & (rw < lay.grid.rows)
        got = np.where(inside, np.floor(rw) * lay.grid.cols + np.floor(c), -1)
        assert (got == want).mean() > 0.99999, lay.product_id
        assert (want >= 0).mean() > 0.5  # most points fell on the grid
        # the way back: a cell's centre from the polynomial lies in that cell
        cells = rng.choice(lay.grid.rows * lay.grid.cols, 500, replace=False)
        cx, cy = poly.mercator_at(cells % lay.grid.cols + 0.5, cells // lay.grid.cols + 0.5)
        assert np.array_equal(lay.cell_at(cx, cy), cells)
        # the browser's array: box, degree, cols, rows, then the four blocks in order
        g = poly.packed()
        n = (poly.degree + 1) * (poly.degree + 2) // 2
        assert g[4:7].tolist() == [poly.degree, lay.grid.cols, lay.grid.rows]
        assert len(g) == 7 + 4 * n and np.array_equal(g[7 + n:7 + 2 * n], poly.to_row)
    assert tile.cell_ids()[0] == 0.0 and not len(tile.cell_ids()[1])  # ids 0 + cell: none sent


def test_the_hover_fit_raises_its_degree_for_a_product_far_larger_than_a_tile():
    from eominer.store import Product
    from eominer.ui.layers import PatchGrid
    from eominer.ui.webmercator import HOVER_DEGREE, MAX_HOVER_ERROR, GridPolynomial

    # 800 km across from 63 N, 100 m cells: the fourth degree is not within 1e-3 cell
    n, none = 8000, np.empty(0, np.int64)
    product = Product(product_id="WIDE", sensor="S2", crs="EPSG:32632", footprint_wkt="",
                      source_path="/src", ard_path="/none.tif", width=n * 10, height=n * 10,
                      bands=("B02",), transform=(10.0, 0.0, 300_000.0, 0.0, -10.0, 7e6))
    grid = PatchGrid("WIDE", 10, n, n, (300_000.0, 6.2e6, 1.1e6, 7e6), none, none, none)
    poly = GridPolynomial.fit(product, grid)
    assert poly.degree > HOVER_DEGREE and poly.error <= MAX_HOVER_ERROR


def brute_force(layers, shape) -> set[int]:
    """Each session patch's centre through pyproj, one shapely Point at a time."""
    import shapely

    out = set()
    for lay in layers:
        for cell in lay.grid.flat.tolist():
            if shape.contains(shapely.Point(*centre_3857(lay, cell))):
                out.add(int(lay.grid.patch_ids[cell]))
    return out


def test_box_and_lasso_select_exactly_the_patches_whose_centre_is_inside(two_zones):
    import shapely

    from eominer.ui.webmercator import selected_patches, shape_of

    a, b = two_zones
    lf, bt, r, t = a.bounds[0], min(a.bounds[1], b.bounds[1]), b.bounds[2], \
        max(a.bounds[3], b.bounds[3])
    cx, cy = (lf + r) / 2, (bt + t) / 2
    box = shape_of({"type": "rect", "x0": cx - 4000, "x1": cx + 4000, "y0": cy - 1500,
                    "y1": cy + 1200})
    want = brute_force(two_zones, box)
    got = selected_patches(two_zones, box)
    assert len(want) > 50 and {x // 1000 for x in want} >= {1, 5}  # across both products
    assert got.tolist() == sorted(want)
    # a lasso: a star over both products (vertices as Bokeh sends them)
    ang = np.linspace(0, 2 * np.pi, 23)[:-1]
    rad = np.where(np.arange(22) % 2, 2500.0, 6000.0)
    lasso = shape_of({"type": "poly", "x": (cx + rad * np.cos(ang)).tolist(),
                      "y": (cy + rad * np.sin(ang)).tolist()})
    want = brute_force(two_zones, lasso)
    assert len(want) > 50 and selected_patches(two_zones, lasso).tolist() == sorted(want)
    # no area: nothing to select
    assert shape_of({"type": "poly", "x": [0, 1], "y": [0, 1]}) is None
    assert shape_of({"type": "point", "x": 0, "y": 0}) is None
    assert selected_patches(two_zones, shapely.box(0, 0, 10, 10)).tolist() == []


def test_quads_are_the_patch_corners_in_3857(two_zones):
    from pyproj import Transformer

    a = two_zones[0]
    cell = 57
    xs, ys, found = a.quads(np.array([int(a.grid.patch_ids[cell]), 999_999]))
    assert found.tolist() == [int(a.grid.patch_ids[cell])]
    r, c = divmod(cell, a.grid.cols)
    left, top = 700_000.0 + c * 80.0, 5_880_000.0 - r * 80.0
    t = Transformer.from_crs("EPSG:32632", "EPSG:3857", always_xy=True)
    ex, ey = t.transform([left, left + 80, left + 80, left], [top - 80, top - 80, top, top])
    assert np.allclose(xs[0], ex) and np.allclose(ys[0], ey)


def test_a_drawn_box_becomes_a_lonlat_area_of_interest():
    import shapely
    from pyproj import Transformer

    from eominer.learning.aoi import as_aoi
    from eominer.ui.webmercator import from_lonlat, to_lonlat

    x, y = from_lonlat([-0.6, -0.5], [44.8, 44.9])
    aoi = as_aoi(to_lonlat(shapely.box(x[0], y[0], x[1], y[1])))
    assert np.allclose(aoi.bounds, (-0.6, 44.8, -0.5, 44.9), atol=1e-9)
    t = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    assert np.allclose(t.transform(x[1], y[1]), (-0.5, 44.9))


def expected_bytes(layer, scores, bounds, shape) -> np.ndarray:
    """The overlay byte of each pixel of an image over `bounds` (3857, bottom row first),
    found independently: its centre through pyproj into the product's grid, then the
    score of the session patch there (0 where none)."""
    from pyproj import Transformer

    h, w = shape
    x0, y0, x1, y1 = bounds
    r, c = np.mgrid[0:h, 0:w]
    x = x0 + (c + 0.5) * (x1 - x0) / w
    y = y0 + (r + 0.5) * (y1 - y0) / h
    px, py = Transformer.from_crs("EPSG:3857", layer.product.crs,
                                  always_xy=True).transform(x, y)
    g = layer.grid
    left, bottom, right, top = g.bounds
    col = np.floor((px - left) / (right - left) * g.cols).astype(int)
    row = np.floor((top - py) / (top - bottom) * g.rows).astype(int)
    inside = (col >= 0) & (col < g.cols) & (row >= 0) & (row < g.rows)
    cell = np.where(inside, row * g.cols + col, -1)
    byte_of = dict(zip(g.flat.tolist(), (np.clip(scores[g.session_rows], 0, 1) * 254
                                         + 1.5).astype(np.uint8).tolist()))
    return np.vectorize(lambda k: byte_of.get(int(k), 0), otypes=[np.uint8])(cell)


def test_the_overlay_follows_the_view_and_a_zoom_brings_finer_pixels(two_zones):
    from eominer.ui.webmercator import VIEW_OVERSAMPLE, fine_resolution, view_layer

    _, b = two_zones  # 30 x 60 patches of 80 m, every third in the session
    rng = np.random.default_rng(1)
    scores = rng.random(len(b.grid.flat)).astype(np.float32)
    # the whole product on a 30 px wide screen: pixels of the view, 2 patches across
    whole = view_layer(b, b.bounds, (30, 30))
    h, w = whole.shape
    res = (whole.bounds[2] - whole.bounds[0]) / w
    assert w == 30 and res == pytest.approx((b.bounds[2] - b.bounds[0]) / 30)
    assert res > 2 * fine_resolution(b.product, b.grid, VIEW_OVERSAMPLE)
    lv = whole.levels(scores)
    assert lv.shape == (h, w) and lv.dtype == np.uint8
    # each pixel carries the score of the patch under its centre (nearest: agree but
    # for pixels whose centre is within GDAL's approximation of a patch edge)
    want = expected_bytes(b, scores, whole.bounds, whole.shape)
    assert (lv == want).mean() > 0.97 and (lv > 0).sum() > 50

    # zoomed in on ~3 x 3 patches, same screen: 4 pixels a patch each way (the grid's
    # 3857 resolution / VIEW_OVERSAMPLE), not the 30 px the screen could hold
    cell = 12 * b.grid.cols + 30
    cx, cy = centre_3857(b, cell)
    view = (cx - 200.0, cy - 200.0, cx + 200.0, cy + 200.0)
    zoom = view_layer(b, view, (30, 30))
    zres = (zoom.bounds[2] - zoom.bounds[0]) / zoom.shape[1]
    assert zres == pytest.approx(fine_resolution(b.product, b.grid, VIEW_OVERSAMPLE))
    assert zres < res / 2 and zoom.shape == (13, 13)
    assert zoom.bounds[0] == pytest.approx(view[0]) and zoom.bounds[3] == pytest.approx(view[3])
    zl = zoom.levels(scores)
    assert (zl == expected_bytes(b, scores, zoom.bounds, zoom.shape)).mean() > 0.97
    # every session patch whose centre is in view shows its own score at its centre
    x0, y0, x1, y1 = zoom.bounds
    zh, zw = zoom.shape
    seen = 0
    for k, f in enumerate(b.grid.flat.tolist()):
        x, y = centre_3857(b, f)
        if x0 < x < x1 and y0 < y < y1:
            r, c = int((y - y0) / (y1 - y0) * zh), int((x - x0) / (x1 - x0) * zw)
            assert zl[r, c] == np.uint8(np.clip(scores[k], 0, 1) * 254 + 1.5)
            seen += 1
    assert seen >= 2
    # partly out of the product: only the visible part; wholly out: nothing
    lf, bt, rt, tp = b.bounds
    half = view_layer(b, (lf - 5000.0, bt, (lf + rt) / 2, tp), (200, 200))
    hres = (half.bounds[2] - half.bounds[0]) / half.shape[1]  # whole pixels: <= 1 more
    assert half.bounds[0] == pytest.approx(lf) and (lf + rt) / 2 <= half.bounds[2] \
        <= (lf + rt) / 2 + hres
    assert view_layer(b, (lf - 9000.0, bt, lf - 1000.0, tp), (100, 100)) is None


def test_warps_on_several_threads_equal_the_same_warps_one_at_a_time(two_zones):
    """The map warps a few products at once (`MapView._draw_bases`). rasterio then
    warns, at random, that an in-memory dataset "has no geotransform" (its hiding of
    that warning is not thread-safe); the images must still be those of serial warps."""
    from concurrent.futures import ThreadPoolExecutor

    from eominer.ui.webmercator import view_layer

    jobs = []
    for layer in two_zones:
        lf, bt, rt, tp = layer.bounds
        for k in range(8):  # views of every size, from the whole product to a few patches
            f = 0.5 ** (k / 2)
            cx, cy = (lf + rt) / 2, (bt + tp) / 2
            jobs.append((layer, (cx - f * (rt - lf) / 2, cy - f * (tp - bt) / 2,
                                 cx + f * (rt - lf) / 2, cy + f * (tp - bt) / 2)))
    jobs *= 12

    def one(job):
        return view_layer(job[0], job[1], (120, 90)).index

    serial = [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(one, jobs))
    assert len(threaded) == 192 and all(s.size > 0 for s in serial)
    assert all(np.array_equal(s, t) for s, t in zip(serial, threaded, strict=True))


# the hover's formatters (mapview._PATCH_JS, _SCORE_JS) as functions of plain data
_RUN_HOVER_JS = """([patchJs, scoreJs, ids, src, points]) => {
  const image = (d) => { const a = Array.from(d.data); a.shape = d.shape; return a }
  src.image = src.image.map(image)
  const patch = new Function('value', 'format', 'special_vars', 'ids', patchJs)
  const score = new Function('value', 'format', 'special_vars', 'src', 'ids', scoreJs)
  return points.map(([x, y]) => {
    const sv = {x: x, y: y, image_index: {index: 0}}
    return [patch(0, null, sv, {data: ids}), score(0, null, sv, {data: src}, {data: ids})]
  })
}"""


@pytest.mark.browser
@pytest.mark.parametrize("ids_run", [True, False], ids=["ids first + cell", "ids per cell"])
def test_the_browser_hover_names_the_patch_and_score_that_pyproj_gives(two_zones, ids_run):
    """The hover's JavaScript itself, in Chromium, on 2,000 random points of a product
    (every third patch in the session, random scores): the patch is the one `patch_at`
    (pyproj) gives, the score that patch's byte of the overlay. With the grid's ids
    consecutive the browser gets only the first; shuffled, it gets one per cell."""
    from dataclasses import replace

    from eominer.ui.mapview import _PATCH_JS, _SCORE_JS
    from eominer.ui.webmercator import MercatorLayer, view_layer

    from .browser import browser

    b = two_zones[1]
    if not ids_run:  # the same grid with its ids shuffled (and the session's with them)
        perm = np.random.default_rng(2).permutation(b.grid.patch_ids)
        b = MercatorLayer(b.product, replace(b.grid, patch_ids=perm), b.bounds, b.shape)
    first, cells = b.cell_ids()
    assert (first >= 0) == ids_run and len(cells) == (0 if ids_run else b.pad)
    scores = np.random.default_rng(3).random(len(b.grid.flat)).astype(np.float32)
    over = view_layer(b, None, (400, 400))
    lv = over.levels(scores)
    lf, bt, r, t = over.bounds
    ids = {"product": [b.product_id], "first": [first], "cells": [cells.tolist()],
           "grid": [b.polynomial.packed().tolist()]}
    src = {"product": [b.product_id], "image": [{"data": lv.ravel().tolist(),
                                                 "shape": list(lv.shape)}],
           "x": [lf], "y": [bt], "dw": [r - lf], "dh": [t - bt]}
    rng = np.random.default_rng(4)
    pts = np.column_stack([rng.uniform(b.bounds[0], b.bounds[2], 2000),
                           rng.uniform(b.bounds[1], b.bounds[3], 2000)])
    with browser() as br:
        page = br.new_page()
        got = page.evaluate(_RUN_HOVER_JS, [_PATCH_JS, _SCORE_JS, ids, src, pts.tolist()])
    score_of = dict(zip(b.grid.patch_ids[b.grid.flat].tolist(), scores.tolist()))
    named = 0
    for (x, y), (pid, score) in zip(pts.tolist(), got):
        want = b.patch_at(x, y)
        assert pid == ("-" if want is None else str(want)), (x, y)
        if want is None:
            assert score == "none"
            continue
        named += 1
        s = score_of.get(want)  # a patch outside the session has no score
        assert score == ("none" if s is None else f"{(int(s * 254 + 1.5) - 1) / 254:.2f}")
    assert named > 1000




@pytest.mark.browser
def test_where_product_boxes_overlap_only_the_grids_under_the_mouse_have_a_tooltip():
    """The map's own HoverTool (`mapview.hover_tool`, its filter included) in a Bokeh page
    in Chromium, over two products in UTM 32N and 33N that overlap by about a kilometre:
    each grid is rotated inside its 3857 box, so where the boxes overlap a point may be on
    both grids, on one, or on neither. The tooltip names exactly the products whose grid
    is under the mouse (`patch_at`, pyproj), never a product outside its grid (before the
    filter, such a product showed a tooltip of its own, patch '-')."""
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, LinearColorMapper, Range1d
    from bokeh.plotting import figure
    from bokeh.resources import INLINE
    from pyproj import Transformer

    from eominer.ui.mapview import HOVER_ROWS, _empty_images, hover_tool, ids_data
    from eominer.ui.webmercator import mercator_layer

    from .browser import browser, to_screen, tooltips

    lon, lat = Transformer.from_crs(32632, 4326, always_xy=True).transform(704_000.0,
                                                                           5_880_000.0)
    x, y = Transformer.from_crs(4326, 32633, always_xy=True).transform(lon, lat)
    layers = [mercator_layer(*product_and_grid("UTM32", 32632, 700_000.0, 5_880_000.0, 40,
                                               50, 1000)),
              mercator_layer(*product_and_grid("UTM33", 32633, round(x) - 1000.0,
                                               round(y) - 1000.0, 30, 60, 5000))]
    a, b = layers
    x0, y0 = max(a.bounds[0], b.bounds[0]), max(a.bounds[1], b.bounds[1])
    x1, y1 = min(a.bounds[2], b.bounds[2]), min(a.bounds[3], b.bounds[3])
    assert x0 < x1 and y0 < y1  # the boxes overlap
    fig = figure(x_range=Range1d(x0, x1), y_range=Range1d(y0, y1), width=300,
                 height=round(300 * (y1 - y0) / (x1 - x0)), min_border=0, tools="",
                 toolbar_location=None, name="eom-figure", css_classes=["eom-map"])
    fig.axis.visible = False
    fig.grid.visible = False
    ids = ColumnDataSource(ids_data(layers))
    glyph = fig.image("image", "x", "y", "dw", "dh", source=ids, global_alpha=0,
                      color_mapper=LinearColorMapper(palette=["#00000000"], low=0, high=1))
    fig.add_tools(hover_tool(glyph, ids, ColumnDataSource(_empty_images()),
                             ColumnDataSource(_empty_images()), HOVER_ROWS))
    # candidate points of the overlap, by the grids under them; 2 px from a grid's edge
    # are left out (a pixel's rounding there is not what this checks)
    step = (x1 - x0) / 300 * 2
    rng = np.random.default_rng(6)
    px, py = rng.uniform(x0, x1, 3000), rng.uniform(y0, y1, 3000)
    on = np.stack([lay.cell_at(px, py) >= 0 for lay in layers])  # (2, points)
    steady = np.ones(len(px), bool)
    for dx in (-step, step):
        for dy in (-step, step):
            steady &= (np.stack([lay.cell_at(px + dx, py + dy) >= 0 for lay in layers])
                       == on).all(0)
    by: dict[int, list] = {0: [], 1: [], 2: []}
    for i in np.flatnonzero(steady):
        want = [lay.product_id for lay, hit in zip(layers, on[:, i]) if hit]
        by[len(want)].append((px[i], py[i], want))
    assert len(by[0]) >= 8, {k: len(v) for k, v in by.items()}
    with browser() as br:
        page = br.new_page()
        page.set_content(file_html(fig, INLINE, "hover"))
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
        page.wait_for_timeout(500)
        for n_grids, pts in by.items():
            for x, y, want in pts[:30]:
                page.mouse.move(*to_screen(page, x, y))
                page.wait_for_timeout(40)
                tip = tooltips(page)
                got = re.findall(r"patch:\s*(\S+)\s*product:\s*(\S+)", tip)
                assert sorted(p for _, p in got) == sorted(want), (n_grids, x, y, tip)
                for pid, product in got:
                    lay = a if product == a.product_id else b
                    assert pid == str(lay.patch_at(x, y)), (x, y, tip)


@pytest.fixture(scope="module")
def across_180():
    """A product of UTM 60S whose 4 km of columns cross 180 degrees at 17 S (Fiji), and
    one of UTM 1S starting 500 m east of its east edge: one map, with their frames."""
    from pyproj import Transformer

    from eominer.ui.webmercator import map_frames, mercator_layer

    x180, y = Transformer.from_crs(4326, 32760, always_xy=True).transform(180.0, -16.9)
    a = product_and_grid("UTM60", 32760, round(x180) - 3000.0, round(y), 40, 50, 1000)
    east, north = a[1].bounds[2], a[1].bounds[3]
    lon, lat = Transformer.from_crs(32760, 4326, always_xy=True).transform(east, north)
    x, y1 = Transformer.from_crs(4326, 32701, always_xy=True).transform(lon, lat)
    b = product_and_grid("UTM01", 32701, round(x) + 500.0, round(y1) + 600.0, 30, 60, 5000, 3)
    frames = map_frames([a[0], b[0]])
    return [mercator_layer(*pg, frame=f) for pg, f in zip((a, b), frames)]


def map_x(lay, cell: int) -> tuple[float, float]:
    """A cell centre on a map across 180, found independently: EPSG:3857 with pyproj,
    moved one turn of the Earth east where it is east of 180 (x < 0)."""
    from eominer.ui.webmercator import WORLD_X

    x, y = centre_3857(lay, cell)
    return x + (WORLD_X if x < 0 else 0.0), y


def test_a_map_across_180_keeps_its_products_side_by_side(across_180, two_zones):
    """EPSG:3857 wraps at 180 degrees: the UTM 60 product's box ran from -20,037 km to
    +20,037 km (around the world, GDAL's suggested overlay 1086 x 0 px) and the UTM 1
    product sat 40,075 km away from it. On a map across 180 both run on past it: 4 km
    wide, side by side; clicks, the hover, the index map and a box drawn across the
    line name the patches that pyproj finds."""
    import shapely

    from eominer.learning.aoi import as_aoi
    from eominer.ui.webmercator import (
        MERCATOR,
        WORLD_X,
        Frame,
        map_frames,
        selected_patches,
        to_lonlat,
    )

    a, b = across_180
    half = WORLD_X / 2
    assert a.bounds[0] < half < a.bounds[2] and 4000 < a.bounds[2] - a.bounds[0] < 4500
    assert 0 < b.bounds[0] - a.bounds[2] < 1000  # 500 m on the ground, boxes turned
    assert b.frame.dst != a.frame.dst and not a.frame.plain
    # maps that do not cross keep EPSG:3857 itself
    assert [f.dst for f in map_frames([lay.product for lay in two_zones])] == [MERCATOR] * 2
    assert map_frames([b.product]) == [Frame(b.product.crs)]
    rng = np.random.default_rng(1)
    for lay in (a, b):
        h, w = lay.shape
        lf, bt, r, t = lay.bounds
        for cell in rng.choice(lay.grid.rows * lay.grid.cols, 40, replace=False).tolist():
            x, y = map_x(lay, cell)
            assert lay.patch_at(x, y) == int(lay.grid.patch_ids[cell])
            col, row = lay.polynomial.grid_at(np.array([x]), np.array([y]))
            assert (int(row[0]) * lay.grid.cols + int(col[0])) == cell  # the hover's
            assert lay.index[int((y - bt) / (t - bt) * h) * w + int((x - lf) / (r - lf) * w)
                             ] == cell
    # a box across the line, over both products
    cy = (max(a.bounds[1], b.bounds[1]) + min(a.bounds[3], b.bounds[3])) / 2
    drawn = shapely.box(half - 1500, cy - 1000, b.bounds[0] + 1500, cy + 1000)
    want = {int(lay.grid.patch_ids[c]) for lay in (a, b) for c in lay.grid.flat.tolist()
            if drawn.contains(shapely.Point(*map_x(lay, c)))}
    assert {i // 5000 for i in want} == {0, 1}  # a's ids from 1000, b's from 5000
    assert selected_patches([a, b], drawn).tolist() == sorted(want)
    # as an area of interest: longitudes past 180, cut into its two parts
    aoi = as_aoi(to_lonlat(drawn)).geometry
    assert aoi.geom_type == "MultiPolygon" and len(aoi.geoms) == 2
    assert sorted(round(g.bounds[0]) for g in aoi.geoms) == [-180, 180]
