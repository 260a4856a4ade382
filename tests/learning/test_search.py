"""The multi-knowledge query on the real OSCD Bordeaux store: equal, ids, order and
distances, to a brute-force reference (every patch read with plain SQL, the filter in
numpy and one shapely box at a time, a full float64 sort); ties by patch_id; the same order
as a session's "find similar"; saved results joined in SQL; the CLI; bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from eominer.errors import ReadOnlySQLError, SearchError
from eominer.learning.search import save_search, search
from eominer.learning.session import Session
from tests.cli.process import in_process
from tests.learning.test_scope_area import TRIANGLE, _geojson

LEVEL = 16


def _all_rows(store, fs_id):
    """Every level-16 patch (both products) and its features, with plain SQL."""
    t = store.query_arrow(
        "SELECT p.patch_id, p.product_id, p.min_lon, p.min_lat, p.max_lon, p.max_lat, "
        "p.valid_fraction, p.cloud_fraction, pr.acquired FROM patches p JOIN products pr "
        "ON pr.product_id = p.product_id WHERE p.level = 16 ORDER BY p.patch_id")
    rows = {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
    table = store.feature_set(fs_id).table_name
    f = store.query_arrow(f"SELECT * FROM {table} ORDER BY patch_id")
    fids = f["patch_id"].to_numpy()
    X = np.column_stack([f[c].to_numpy() for c in f.column_names[1:]]).astype(np.float32)
    return rows, fids, X


def _reference(store, fs_id, like, keep, top):
    """Brute force: candidates = `keep` (a mask over all rows) with features; standardised
    with the candidates' mean/std in float32; float64 distances to the examples' centroid;
    a full sort by (distance, patch_id); the examples left out."""
    rows, fids, X = _all_rows(store, fs_id)
    cand = rows["patch_id"][keep]
    have = np.isin(fids, cand)
    Xc, ids = X[have], fids[have]
    mean = Xc.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = Xc.std(axis=0, dtype=np.float64)
    std[~(std > 1e-12)] = 1.0
    std = std.astype(np.float32)
    Xs = (Xc - mean) / std
    ex = (X[np.searchsorted(fids, like)] - mean) / std
    c = ex.astype(np.float64).mean(axis=0)
    d2 = ((Xs.astype(np.float64) - c) ** 2).sum(axis=1)
    out = ~np.isin(ids, like)
    ids, d2 = ids[out], d2[out]
    order = np.lexsort((ids, d2))[:top]
    return ids[order], d2[order], int(keep.sum()), int(keep.sum() - have.sum())


def _box_in(rows, geom):
    return np.asarray([box(a, b, c, d).intersects(geom) for a, b, c, d in zip(
        rows["min_lon"], rows["min_lat"], rows["max_lon"], rows["max_lat"])])


def _clouds(store):
    store.execute("UPDATE patches SET cloud_fraction = CAST(patch_id % 10 AS REAL) / 10")


def test_mixed_query_equals_brute_force(learn_store, oscd_db):
    fs = oscd_db["fs"]
    _clouds(learn_store)
    rows, fids, _ = _all_rows(learn_store, fs)
    like = [400, 532, 777]
    where = ("cloud_fraction < 0.5 AND valid_fraction > 0.9 AND "
             "acquired < TIMESTAMP '2017-01-01 00:00:00'")
    keep = ((rows["cloud_fraction"] < np.float32(0.5)) & (rows["valid_fraction"] > 0.9)
            & (rows["acquired"] < np.datetime64("2017-01-01")) & _box_in(rows, TRIANGLE))
    r = search(learn_store, like, where=where, aoi=TRIANGLE, top=50)
    ids, d2, n_cand, n_missing = _reference(learn_store, fs, like, keep, 50)
    assert (r.n_candidates, r.n_missing, len(r.patch_ids)) == (n_cand, n_missing, 50)
    assert n_cand == 189 and n_missing == 0
    assert r.patch_ids.tolist() == ids.tolist()  # same ids, same order
    assert np.array_equal(r.distances, np.sqrt(d2))  # bit for bit
    dims = _all_rows(learn_store, fs)[2].shape[1]
    assert np.array_equal(r.similarities, 1 / (1 + d2 / dims)) and dims == 93
    assert set(r.product_ids) == {oscd_db["product"]} and r.feature_set_ids == (fs,)
    assert r.level == LEVEL and r.like == tuple(like)

    # both dates, no filter: the second date has no features (counted, not ranked)
    r2 = search(learn_store, [400], top=896)
    ids2, d22, n2, miss2 = _reference(learn_store, fs, [400],
                                      np.ones(len(rows["patch_id"]), bool), 896)
    assert (r2.n_candidates, r2.n_missing) == (n2, miss2) == (1792, 896)
    assert r2.patch_ids.tolist() == ids2.tolist() and len(ids2) == 895
    assert np.array_equal(np.sqrt(d22), r2.distances)


def test_ties_rank_by_patch_id_and_agree_with_find_similar(learn_store, oscd_db):
    fs_id = oscd_db["fs"]
    s = Session.create(learn_store, "sim", "ana", "new_construction", [oscd_db["product"]],
                       LEVEL, [fs_id])
    r = search(learn_store, [500], product_ids=[oscd_db["product"]], top=20)
    assert r.patch_ids.tolist() == s.find_similar(500, 20).tolist()

    # five copies of the example's features: five ties at distance 0, by patch_id
    fs = learn_store.feature_set(fs_id)
    row = learn_store.query_arrow(f"SELECT * FROM {fs.table_name} WHERE patch_id = 500")
    x = np.asarray([row[c][0].as_py() for c in fs.columns], np.float32)
    copies = [700, 301, 650, 333, 234]
    learn_store.write_features(fs, np.asarray(copies), np.tile(x, (5, 1)))
    r = search(learn_store, [500], top=8)
    assert r.patch_ids[:5].tolist() == sorted(copies)
    assert r.distances[:5].tolist() == [0.0] * 5 and r.similarities[:5].tolist() == [1.0] * 5
    rows, fids, _ = _all_rows(learn_store, fs_id)
    ids, _, _, _ = _reference(learn_store, fs_id, [500], np.ones(len(rows["patch_id"]), bool), 8)
    assert r.patch_ids.tolist() == ids.tolist()


def test_saved_search_joins_in_sql(learn_store, oscd_db):
    r = save_search(learn_store, search(learn_store, [400, 532], top=10,
                                        where="valid_fraction > 0.9"), owner="ana")
    q = learn_store.user_query(
        "SELECT r.rank, r.patch_id, s.product_id, s.acquired, r.similarity "
        "FROM search_results r JOIN scope_rows s ON s.patch_id = r.patch_id "
        f"WHERE r.search_id = '{r.search_id}' ORDER BY r.rank").table
    assert q["patch_id"].to_pylist() == r.patch_ids.tolist()
    assert q["rank"].to_pylist() == list(range(1, 11))
    assert np.allclose(q["similarity"].to_numpy(), r.similarities, rtol=0, atol=0)
    meta = learn_store.query("SELECT owner, level, like_ids, where_sql, top, n_candidates "
                             "FROM searches WHERE search_id = ?", (r.search_id,))[0]
    assert meta == ("ana", 16, "[400, 532]", "valid_fraction > 0.9", 10, r.n_candidates)
    assert learn_store.search_results(r.search_id)["patch_id"].to_pylist() == r.patch_ids.tolist()


def test_bad_searches(learn_store, oscd_db, tmp_path):
    with pytest.raises(SearchError, match=r"example patch\(es\) \[99999999\] are not in"):
        search(learn_store, [400, 99999999])
    with pytest.raises(SearchError, match=r"at several levels \[16, 32\].*--level"):
        search(learn_store, [400, 20])
    with pytest.raises(SearchError, match=r"\[20\] are not at level 16"):
        search(learn_store, [400, 20], level=16)
    with pytest.raises(ReadOnlySQLError, match="not allowed here"):
        search(learn_store, [400], where="patch_id IN (DELETE FROM patches RETURNING patch_id)")
    with pytest.raises(SearchError, match=r"intersects none of the 1792 patches at level 16"):
        search(learn_store, [400], aoi=box(2.3, 48.8, 2.4, 48.9))
    with pytest.raises(SearchError, match=r"keeps none of the \d+ patches at level 16 inside "
                                          "the area of interest"):
        search(learn_store, [400], aoi=TRIANGLE, where="valid_fraction > 2")
    # a product id that does not exist: named (it read "none of the 0 patches ... has
    # features", which sent the user to `eominer extract`)
    with pytest.raises(SearchError, match=r"product\(s\) nope are not in .*`eominer products`"):
        search(learn_store, [400], product_ids=["nope"])
    assert learn_store.query("SELECT COUNT(*) FROM searches")[0][0] == 0
    assert learn_store.query("SELECT COUNT(*) FROM patches")[0][0] == 2240


def test_cli_search(learn_store, oscd_db, tmp_path, capsys):
    _clouds(learn_store)
    where = "cloud_fraction < 0.5"
    expected = search(learn_store, [400, 532], where=where, aoi=TRIANGLE, top=12)
    db = learn_store.url
    learn_store.close()
    aoi = _geojson(tmp_path / "t.geojson", [TRIANGLE])
    run = in_process(capsys)
    r = run(["search", "--db", db, "--like", "400,532", "--where", where, "--aoi", str(aoi),
             "--top", "12", "--format", "json", "--save", "--owner", "ana"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows, (r.stdout, r.stderr)
    assert [x["patch_id"] for x in rows] == expected.patch_ids.tolist()
    assert [x["product_id"] for x in rows] == list(expected.product_ids)
    assert np.allclose([x["similarity"] for x in rows], expected.similarities)
    assert f"{expected.n_candidates} patches kept by the area of interest and the WHERE" \
        in r.stderr
    sid = r.stderr.split("saved as search ")[1].split(":")[0]
    r = run(["sql", "--db", db, "--format", "json",
             f"SELECT patch_id FROM search_results WHERE search_id = '{sid}' ORDER BY rank"],
            tmp_path / "ws")
    assert [x["patch_id"] for x in json.loads(r.stdout)] == expected.patch_ids.tolist()
    r = run(["search", "--db", db, "--like", "400", "--where", "ATTACH 'x.db'"],
            tmp_path / "ws")
    assert r.returncode == 1 and "'ATTACH' is not allowed here" in r.stderr
    r = run(["search", "--db", db, "--like", "400", "--top", "3"], tmp_path / "ws")
    assert r.returncode == 0 and re.search(r"^\d+ patches searched at level \d+", r.stderr,
                                           re.M), r.stderr
    assert shapely.from_wkt(expected.aoi_wkt).equals_exact(TRIANGLE, 1e-7)


def test_examples_in_several_sets_are_searched_in_all_of_them(learn_store, oscd_db):
    """No --features and the examples have rows in two sets: both, together (the sets a
    session over them is offered); a set that lacks one example is not taken."""
    fs = oscd_db["fs"]
    ids = np.asarray([r[0] for r in learn_store.query(
        "SELECT patch_id FROM patches WHERE level = 16 ORDER BY patch_id")], np.int64)
    rng = np.random.default_rng(7)
    both = learn_store.register_feature_set("probe", 1, {}, ["a", "b"])
    learn_store.write_features(both, ids, rng.normal(size=(len(ids), 2)))
    some = learn_store.register_feature_set("probe", 2, {}, ["c"])
    learn_store.write_features(some, ids[ids != 532], rng.normal(size=(len(ids) - 1, 1)))
    r = search(learn_store, [400, 532], top=20)
    assert r.feature_set_ids == (fs, both.feature_set_id)
    given = search(learn_store, [400, 532], top=20, feature_set_ids=[fs, both.feature_set_id])
    assert r.patch_ids.tolist() == given.patch_ids.tolist()
    assert np.array_equal(r.distances, given.distances)
    alone = search(learn_store, [400, 532], top=20, feature_set_ids=[fs])
    assert r.patch_ids.tolist() != alone.patch_ids.tolist()  # the second set counts
