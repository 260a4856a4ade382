"""eominer.store.features: MERGE upsert and numpy read-back, on every engine of the contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from eominer.errors import FeatureError
from eominer.store.schema import SCHEMA_VERSION
from tests.store.rows import T0, add_product, patch_rows


def test_features_upsert_with_merge_is_idempotent(store):
    fs = store.register_feature_set("spectral", 1, {"bands": ["B04"]}, ["b04_mean", "b04_std"])
    assert store.register_feature_set("spectral", 1, {"bands": ["B04"]}, ["b04_mean", "b04_std"]) == fs
    ids = np.arange(1, 50_001, dtype=np.int64)
    vals = np.stack([ids * 0.5, ids * 0.25], axis=1).astype(np.float32)
    store.write_features(fs, ids, vals)
    # re-writing an overlapping block replaces rows: no duplicates
    store.write_features(fs, ids[-10:], np.zeros((10, 2), np.float32))
    assert store.count_features(fs) == 50_000
    rows = store.query(f"SELECT b04_mean FROM {fs.table_name} WHERE patch_id = ?", (50_000,))
    assert rows == [(0.0,)]
    rows = store.query(f"SELECT b04_mean FROM {fs.table_name} WHERE patch_id = ?", (7,))
    assert rows[0][0] == pytest.approx(3.5)
    other = store.register_feature_set("spectral", 1, {"bands": ["B08"]}, ["b08_mean"])
    assert other.feature_set_id != fs.feature_set_id  # changed parameters, new identity
    with pytest.raises(FeatureError, match="expected"):
        store.write_features(fs, ids[:3], np.zeros((3, 5), np.float32))


def test_read_features_to_numpy(store):
    store.insert_arrow("patches", patch_rows(1000))
    fs = store.register_feature_set("spectral", 1, {}, ["a", "b", "c"])
    ids = np.arange(1, 1001, dtype=np.int64)
    vals = np.random.default_rng(1).random((1000, 3)).astype(np.float32)
    store.write_features(fs, ids, vals)
    got_ids, X, names = store.read_features([fs.feature_set_id], ["P1"], 32)
    assert X.dtype == np.float32 and X.shape == (1000, 3)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(X, vals)
    assert names[0].endswith("__a")


def test_read_features_sorts_rows_streamed_in_any_order(store):
    """Rows written out of order in several blocks, two sets, one of two products: the
    join's rows (several runs, one per DuckDB thread) come back sorted by patch id, with
    the sets' columns in the order asked."""
    n = 200_000
    store.insert_arrow("patches", patch_rows(n, first=1, product="P1"))
    store.insert_arrow("patches", patch_rows(1000, first=n + 1, product="P2"))
    a = store.register_feature_set("spectral", 1, {}, ["a", "b", "c"])
    b = store.register_feature_set("gabor", 1, {}, ["g0", "g1"])
    ids = np.arange(1, n + 1001, dtype=np.int64)
    rng = np.random.default_rng(5)
    va = rng.random((len(ids), 3)).astype(np.float32)
    vb = rng.random((len(ids), 2)).astype(np.float32)
    for part in np.array_split(rng.permutation(len(ids)), 4):
        store.write_features(a, ids[part], va[part])
    for part in np.array_split(rng.permutation(len(ids)), 3):
        store.write_features(b, ids[part], vb[part])
    got_ids, X, names = store.read_features([b.feature_set_id, a.feature_set_id], ["P1"], 32)
    np.testing.assert_array_equal(got_ids, ids[:n])
    np.testing.assert_array_equal(X, np.hstack([vb[:n], va[:n]]))
    assert [x.split("__")[1] for x in names] == ["g0", "g1", "a", "b", "c"]


def test_feature_coverage_names_the_sets_of_each_product(store):
    """The app preselects the feature sets that cover the chosen products, not the newest
    set (a change set covers only the first date of its pair)."""
    store.insert_arrow("patches", patch_rows(100, first=1, product="P1"))
    store.insert_arrow("patches", patch_rows(50, first=101, product="P2"))
    both = store.register_feature_set("spectral", 1, {}, ["a"])
    store.write_features(both, np.arange(1, 151), np.zeros((150, 1), np.float32))
    change = store.register_feature_set("change_cva", 1, {"first": "P1"}, ["score"])
    store.write_features(change, np.arange(1, 41), np.ones((40, 1), np.float32))
    cov = store.feature_coverage(["P1", "P2"], 32)
    assert cov == {both.feature_set_id: {"P1": 100, "P2": 50},
                   change.feature_set_id: {"P1": 40}}
    assert store.covering_feature_sets(["P2"], 32) == [both.feature_set_id]
    assert store.covering_feature_sets(["P1"], 32) == [both.feature_set_id,
                                                       change.feature_set_id]
    assert store.covering_feature_sets(["P1", "P2"], 32) == [both.feature_set_id]
    assert store.covering_feature_sets(["P1"], 64) == []
    assert store.covering_feature_sets([], 32) == []
    # where a set has rows: what a neighbourhood set is built over
    assert store.feature_levels(both.feature_set_id) == [("P1", 32), ("P2", 32)]
    assert store.feature_levels(both.feature_set_id, ["P2"]) == [("P2", 32)]
    assert store.feature_levels("change_cva") == [("P1", 32)]  # by name, as elsewhere


def test_every_write_keeps_the_column_ranges_of_its_blocks(store):
    """`feature_ranges` (what a session's int8 codes are scaled by) answers from the ranges
    the writes kept: equal to a pass over the features when nothing was rewritten,
    never narrower after a rewrite, NaN and +-inf left out, blocks outside the asked ids
    ignored, two sets in `read_features`' column order."""
    from eominer.store.features import block_ranges

    rng = np.random.default_rng(3)
    fs = store.register_feature_set("spectral", 1, {}, ["a", "b", "c"])
    blk = 1 << 16
    ids = np.concatenate([np.arange(5, 3000), np.arange(blk + 10, blk + 900),
                          np.arange(3 * blk, 3 * blk + 50)]).astype(np.int64)
    X = rng.normal(0.0, 1.0, (len(ids), 3)).astype(np.float32)
    X[ids >= 3 * blk, 0] += 100.0  # the third block: a far larger range in column a
    X[7, 1] = np.nan
    X[8, 1] = np.inf
    X[:, 2][ids < blk] = -np.inf  # column c has no finite value in the first block
    X[ids < blk, 2] = np.nan
    order = rng.permutation(len(ids))  # writes in no order, over several calls
    for part in np.array_split(order, 4):
        store.write_features(fs, ids[part], X[part], replace=False)
    for first, last in ((1, int(ids[-1])), (1, blk + 899), (blk + 10, blk + 20)):
        kept = store.feature_ranges([fs.feature_set_id], first, last)
        lo_blk, hi_blk = first >> 16, last >> 16
        sel = ((ids >> 16) >= lo_blk) & ((ids >> 16) <= hi_blk)
        fin = np.where(np.isfinite(X[sel]), X[sel], np.nan)
        want = np.nanmin(fin, axis=0), np.nanmax(fin, axis=0)
        np.testing.assert_allclose(kept[0], want[0], rtol=1e-6)
        np.testing.assert_allclose(kept[1], want[1], rtol=1e-6)
    # the ids asked for: a whole block's range, not only ids 10..20 of block 1
    kept = store.feature_ranges([fs.feature_set_id], blk + 10, blk + 20)
    scan = store.scan_feature_ranges([fs.feature_set_id], blk + 10, blk + 20)
    assert (kept[0] <= scan[0]).all() and (kept[1] >= scan[1]).all()
    assert kept[1][0] < 50.0  # block 3's +100 stays out of block 1
    whole = store.feature_ranges([fs.feature_set_id], 1, int(ids[-1]))
    assert whole[1][0] > 100.0 and np.isfinite(whole[0]).all()
    # nothing finite in c for the first block alone: NaN, as the scan says
    first = store.feature_ranges([fs.feature_set_id], 1, 3000)
    assert np.isnan(first[0][2]) and np.isnan(store.scan_feature_ranges(
        [fs.feature_set_id], 1, 3000)[0][2])
    # a rewrite to narrower values keeps the range wide (still a bound), a wider one grows it
    store.write_features(fs, ids[:100], np.zeros((100, 3), np.float32))
    store.write_features(fs, ids[100:101], np.full((1, 3), 1e6, np.float32))
    lo, hi = store.feature_ranges([fs.feature_set_id], 1, 3000)
    assert hi.tolist() == [1e6, 1e6, 1e6] and lo[0] == pytest.approx(float(X[5:2995, 0].min()))
    # two sets: the columns of the first, then the second's
    other = store.register_feature_set("texture", 1, {}, ["t"])
    store.write_features(other, ids[:10], np.arange(10, dtype=np.float32)[:, None] - 4.0)
    lo, hi = store.feature_ranges([fs.feature_set_id, other.feature_set_id], 1, 3000)
    assert len(lo) == 4 and (lo[3], hi[3]) == (-4.0, 5.0)
    # the pure function: blocks ascending, NaN where a block has no finite value
    b, lo, hi = block_ranges(np.array([blk + 1, 2, 3]), np.array([[1.0], [np.inf], [2.0]]))
    assert b.tolist() == [0, 1] and lo[:, 0].tolist() == [2.0, 1.0] and hi[0, 0] == 2.0


def test_an_upgrade_to_version_6_fills_the_ranges_from_the_stored_features(store):
    """A version-5 database (features written, no `feature_ranges`) opened by this
    version: the migration computes every set's ranges from its rows, equal to a scan."""
    from eominer.store import open_store

    fs = store.register_feature_set("spectral", 1, {}, ["a", "b"])
    ids = np.r_[np.arange(1, 2000), np.arange(70_000, 71_000)].astype(np.int64)
    X = np.random.default_rng(4).normal(0.0, 3.0, (len(ids), 2)).astype(np.float32)
    X[3, 0] = np.nan
    store.write_features(fs, ids, X)
    store.execute("DROP TABLE feature_ranges")  # as version 5 had it
    store.execute("DELETE FROM schema_version WHERE version >= 6")
    store.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                  (5, "0.1.0", dt.datetime(2026, 11, 1)))
    url = store.url
    store.close()
    with open_store(url) as upgraded:
        assert upgraded.query("SELECT MAX(version) FROM schema_version")[0][0] == SCHEMA_VERSION
        for first, last in ((1, 71_000), (1, 1999), (65_536, 71_000)):  # whole blocks
            kept = upgraded.feature_ranges([fs.feature_set_id], first, last)
            scan = upgraded.scan_feature_ranges([fs.feature_set_id], first, last)
            np.testing.assert_allclose(kept, scan, rtol=1e-6)
        assert upgraded.query("SELECT COUNT(*) FROM feature_ranges")[0][0] == 4  # 2 x 2


def test_column_stats_and_a_products_rows_taken_out(store):
    """`eominer index build`'s standardisation (mean, population std per column at a
    level) and the rows of one product taken out of a set (an archive or `dates_` set's
    first date, before the rows of its new pair)."""

    p1 = add_product(store, "P1", T0, 1)
    p2 = add_product(store, "P2", T0, 101)
    fs = store.register_feature_set("spectral", 1, {}, ["a", "b"])
    store.write_features(fs, np.array(p1[:4] + p2[:2], np.int64),  # level 32
                         np.array([[1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [6, 0]], np.float32))
    store.write_features(fs, np.array(p1[4:5], np.int64), np.array([[100, 7]], np.float32))
    mean, std, n = store.column_stats(fs, 32)
    assert n == 6
    np.testing.assert_allclose(mean, [3.5, 0.0])
    np.testing.assert_allclose(std, [np.std([1, 2, 3, 4, 5, 6]), 0.0], rtol=1e-6)
    with store.transaction():
        store.delete_product_rows(fs, "P1")
    assert store.feature_patch_ids(fs).tolist() == p2[:2]  # every level of P1 went
    assert store.column_stats(fs, 64)[2] == 0


def test_streamed_and_point_reads_of_the_features(store):
    """What a compact (10M-patch) session reads, on every engine: the rows of an id range
    as record batches (any order), a few rows by id, and which sets hold given patches;
    a set dropped takes its table and every row that describes it."""
    store.insert_arrow("patches", patch_rows(300))
    a = store.register_feature_set("spectral", 1, {}, ["a", "b"])
    b = store.register_feature_set("gabor", 1, {}, ["g"])
    ids = np.arange(1, 301, dtype=np.int64)
    va = np.column_stack([ids, -ids]).astype(np.float32)
    store.write_features(a, ids, va)
    store.write_features(b, ids[:200], (ids[:200] * 0.5).astype(np.float32)[:, None])
    both = [a.feature_set_id, b.feature_set_id]

    batches = list(store.feature_batches(both, 50, 250, rows=64))
    assert all(bt.num_rows <= 64 for bt in batches)
    got = pa.Table.from_batches(batches).to_pydict()
    order = np.argsort(got["patch_id"])
    assert np.asarray(got["patch_id"])[order].tolist() == list(range(50, 201))  # both sets
    cols = [k for k in got if k != "patch_id"]
    X = np.column_stack([np.asarray(got[k])[order] for k in cols])
    np.testing.assert_array_equal(X[:, 0], np.arange(50, 201))
    np.testing.assert_array_equal(X[:, 2], np.arange(50, 201) * 0.5)

    rid, rX = store.read_feature_rows(both, [150, 7, 999, 7, 260])
    assert rid.tolist() == [7, 150]  # 260 has no gabor row, 999 no row at all
    np.testing.assert_array_equal(rX, [[7, -7, 3.5], [150, -150, 75]])
    assert store.read_feature_rows(both, [])[1].shape == (0, 3)

    assert [fs.feature_set_id for fs in store.feature_sets_holding([3, 150])] == both
    assert [fs.name for fs in store.feature_sets_holding([250])] == ["spectral"]
    assert store.resolve_feature_sets(["gabor", a.feature_set_id, "gabor"]) == [
        b.feature_set_id, a.feature_set_id]
    with store.transaction():
        store.drop_feature_set(b.feature_set_id)
    assert store.feature_set(b.feature_set_id) is None
    assert not store.has_table(b.table_name)
    assert [fs.name for fs in store.feature_sets_holding([3])] == ["spectral"]
