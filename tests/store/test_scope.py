"""The scope SQL on every engine: the WHERE over scope_rows on the read-only path (dates,
clouds, a NOT EXISTS over labels), its refusals, the AOI's bbox prefilter, saved searches."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from eominer.errors import ReadOnlySQLError, UserSQLError
from tests.store.rows import T0, add_product, session_record


def _two_products(store):
    a = add_product(store, "A", dt.datetime(2016, 5, 4), first=1)
    b = add_product(store, "B", dt.datetime(2017, 10, 26), first=100)
    return a, b


def test_where_sees_patches_products_and_labels(store):
    a, b = _two_products(store)  # level 32: a[:4], b[:4]; cloud NULL, 0.1, 0.2, 0.3
    assert store.where_patch_ids("acquired >= DATE '2017-01-01'", 32).tolist() == b[:4]
    assert store.where_patch_ids("cloud_fraction < 0.15 AND valid_fraction > 0.9", 32,
                                 ["A"]).tolist() == []
    assert store.where_patch_ids("COALESCE(cloud_fraction, 0) < 0.15", 32,
                                 ["A", "B"]).tolist() == [a[0], a[1], b[0], b[1]]
    assert store.where_patch_ids("tile_id = 'T30TXQ' AND sensor = 'S2' AND "
                                 "processing_level = 'L1C' AND orbit_direction IS NULL",
                                 64).tolist() == a[4:] + b[4:]
    store.insert_session(session_record("s1", "ana", T0, product_ids=("A",)))
    store.put_label("s1", a[1], "ana", 1, 0)
    store.put_label("s1", a[2], "ana", -1, 0)
    not_yes = ("NOT EXISTS (SELECT 1 FROM labels l WHERE l.patch_id = scope_rows.patch_id "
               "AND l.session_id = 's1' AND l.label = 1)")
    assert store.where_patch_ids(not_yes, 32, ["A"]).tolist() == [a[0], a[2], a[3]]
    assert store.where_patch_ids("1 = 1", 32, []).tolist() == []


@pytest.mark.parametrize(("where", "error", "match"), [
    ("1 = 1; DROP TABLE patches", ReadOnlySQLError, "one statement at a time"),
    ("patch_id IN (SELECT patch_id FROM patches) OR 1 = (DELETE FROM patches)",
     ReadOnlySQLError, "'DELETE' is not allowed"),
    ("EXISTS (SELECT 1 FROM file_loader('/etc/passwd'))", ReadOnlySQLError, "local files"),
    ("level >", UserSQLError, "SQL error"),
    # an unfinished condition: the error is on the user's text, never on the ')' that
    # closes it inside the product's query
    ("cloud_fraction < 0.1 AND", UserSQLError, r"SQL error: (?!.*('\)'|\"\)\")).*(?i:and)"),
    # a misspelt column: the message lists the ones there are
    ("cloud_fractio < 0.5", UserSQLError,
     r"over scope_rows \(columns: patch_id, .*, cloud_fraction, .*; docs/schema.md\): "),
    ("level = ?", UserSQLError, "parameter marker"),
    ("(level = 32", UserSQLError, "unbalanced parentheses"),
    ("  ", UserSQLError, "empty WHERE"),
])
def test_bad_where(store, where, error, match):
    _two_products(store)
    with pytest.raises(error, match=match):
        store.where_patch_ids(where, 32)
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 16


def test_lonlat_boxes_prefilter_and_saved_search(store):
    a, b = _two_products(store)
    t = store.lonlat_boxes(32, bbox=(-0.985, 43.9, -0.975, 44.1))  # meets boxes 1 and 2
    assert t["patch_id"].to_pylist() == [a[1], a[2], b[1], b[2]]
    assert store.lonlat_boxes(64, ["B"])["patch_id"].to_pylist() == b[4:]
    # a box across the antimeridian runs past 180 (grid.py): an area just east of it
    # (-180 .. -179.9) meets it shifted back by a turn, one just west of 179.9 does not
    store.execute("UPDATE patches SET min_lon = ?, max_lon = ? WHERE patch_id = ?",
                  (179.995, 180.005, a[0]))
    assert store.lonlat_boxes(32, bbox=(-180.0, 43.9, -179.9, 44.1))["patch_id"].to_pylist() \
        == [a[0]]
    assert store.lonlat_boxes(32, bbox=(179.0, 43.9, 179.9, 44.1)).num_rows == 0
    store.insert_search("s9", owner="ana", level=32, feature_set_ids='["fs"]', like_ids="[1]",
                        where_sql="valid_fraction > 0.5", aoi_wkt=None, top=3, n_candidates=7,
                        created=T0, patch_ids=np.asarray([b[2], a[3], b[0]]),
                        distances=np.asarray([0.5, 1.0, 1.5]),
                        similarities=np.asarray([0.9, 0.8, 0.7]))
    r = store.search_results("s9")
    assert r["patch_id"].to_pylist() == [b[2], a[3], b[0]]
    assert r["product_id"].to_pylist() == ["B", "A", "B"] and r["rank"].to_pylist() == [1, 2, 3]
    q = store.user_query("SELECT r.rank, s.acquired FROM search_results r JOIN scope_rows s "
                         "ON s.patch_id = r.patch_id WHERE r.search_id = 's9' ORDER BY r.rank")
    assert q.table.num_rows == 3
    assert store.patch_levels_of([a[0], b[5], 999]) == {a[0]: 32, b[5]: 64}
