"""eominer.store.removal (`Store.remove_product` and what it would take) on every engine
of the contract."""

from __future__ import annotations

import datetime as dt

import pytest

from eominer.errors import StoreError
from tests.store.rows import T0, add_product


def test_remove_product_takes_its_rows_and_leaves_the_others(store):
    """Every table that names the product or its patches loses those rows, in one
    transaction; the other product keeps all of its own. A session's product is refused."""
    import numpy as np

    from tests.store.rows import session_record

    ids = {p: add_product(store, p, T0, first) for p, first in (("P1", 1), ("P2", 101))}
    fs = store.register_feature_set("spectral", 1, {}, ["a", "b"], "S2")
    for p in ("P1", "P2"):
        store.write_features(fs, np.array(ids[p]), np.ones((len(ids[p]), 2), np.float32))
        store.upsert_annotations("m1", "lake", np.array(ids[p][:2]), np.ones(2), np.ones(2, bool),
                                 "1", "apply")
    both = np.array(ids["P1"][:3] + ids["P2"][:3])
    store.insert_search("s1", owner=None, level=32, feature_set_ids="[]", like_ids="[]",
                        where_sql=None, aoi_wkt=None, top=6, n_candidates=16, created=T0,
                        patch_ids=both, distances=np.zeros(6), similarities=np.ones(6))
    store.record_pair("change", "P1", "P2", layer_path="/layers/p1p2.tif",
                      params={"binary_path": "/layers/p1p2_binary.tif"}, method="cva")
    store.insert_session(session_record("S9", "ana", T0, product_ids=("P2",)))

    r = store.remove_product("P1")
    assert (r.patches, r.feature_rows, r.annotations, r.search_results) == (8, 8, 2, 3)
    assert r.ard_path == "/ard/P1.tif" and r.source_path == "/src/P1"
    assert r.layer_paths == ("/layers/p1p2.tif", "/layers/p1p2_binary.tif")
    assert [p.product_id for p in store.product_list()] == ["P2"]
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 8
    assert store.query(f"SELECT COUNT(*) FROM {fs.table_name}")[0][0] == 8
    assert store.query("SELECT COUNT(*) FROM annotations")[0][0] == 2
    assert [r[0] for r in store.query("SELECT patch_id FROM search_results ORDER BY rank")] == (
        ids["P2"][:3])
    assert store.query("SELECT COUNT(*) FROM product_pairs")[0][0] == 0
    with pytest.raises(StoreError, match=r"product 'P2' is in the scope of 1 session\(s\): S9 "
                       r"\(find S9\).*Nothing was removed"):
        store.remove_product("P2")
    with pytest.raises(StoreError, match="product 'P1' is not in"):
        store.remove_product("P1")
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 8


def test_remove_product_drops_the_sets_computed_from_its_pixels(store):
    """A change pair's set lives on its first date's patches and a time series' on its
    grid's, but their values come from the other products' pixels too
    (`feature_set_sources`): removing one of those drops the set whole, table and
    rows, in the transaction; a set only on its own patches keeps the others' rows. A
    session that uses such a set refuses the removal first."""
    import numpy as np

    from tests.store.rows import session_record

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("P1", "P2", "P3"))}
    own = store.register_feature_set("spectral", 1, {}, ["a", "b"], "S2")
    change = store.register_feature_set("change_cva", 1, {"first": "P1", "second": "P2"},
                                        ["p"], "S2", sources=("P1", "P2"))
    series = store.register_feature_set("temporal", 1, {"on": "P3"}, ["amp"], "S2",
                                        sources=("P1", "P2", "P3", "not-ingested.tif"))
    for p in ("P1", "P2", "P3"):
        store.write_features(own, np.array(ids[p]), np.ones((len(ids[p]), 2), np.float32))
    store.write_features(change, np.array(ids["P1"]), np.ones((8, 1), np.float32))
    store.write_features(series, np.array(ids["P3"]), np.ones((8, 1), np.float32))
    assert store.feature_set_sources(series.feature_set_id) == ["P1", "P2", "P3"]
    # registered again (a re-run): idempotent, and a source named later is added
    store.register_feature_set("temporal", 1, {"on": "P3"}, ["amp"], "S2", sources=("P2",))
    assert store.feature_set_sources(series.feature_set_id) == ["P1", "P2", "P3"]
    assert [f.feature_set_id for f in store.feature_sets_from("P2")] == sorted(
        [change.feature_set_id, series.feature_set_id])
    store.insert_session(session_record("S8", "ana", T0, product_ids=("P3",),
                                        feature_set_ids=(series.feature_set_id,)))

    with pytest.raises(StoreError, match=r"computed from product 'P2''s pixels are used by "
                       rf"1 session\(s\): S8 \(find S8: {series.feature_set_id}\).*Nothing "
                       "was removed"):
        store.remove_product("P2")
    assert store.product("P2") is not None and store.has_table(series.table_name)
    store.delete_session("S8")
    r = store.remove_product("P2")
    assert r.dropped_sets == tuple(sorted([change.feature_set_id, series.feature_set_id]))
    assert r.feature_rows == 8  # its own rows of `spectral`; the dropped sets' rows go whole
    for fs in (change, series):
        assert not store.has_table(fs.table_name) and store.feature_set(fs.feature_set_id) is None
        for table in ("feature_sets", "feature_ranges", "feature_set_sources"):
            assert store.query(f"SELECT COUNT(*) FROM {table} WHERE feature_set_id = ?",
                               (fs.feature_set_id,))[0][0] == 0
    assert store.query(f"SELECT COUNT(*) FROM {own.table_name}")[0][0] == 16
    assert store.feature_sets_from("P1") == [] and store.remove_product("P1").dropped_sets == ()


def test_removing_an_s1_product_takes_only_its_partners_rows_out_of_a_fused_set(store):
    """A fused S1+S2 set holds S2 patches, each computed with its S2 product's S1 partner
    (recorded with the rows: `feature_row_sources`): removing one S1 product takes out
    the rows of the S2 products computed from it, and keeps the set and every other row
    (before, the set went whole, for the whole archive). A session over those S2
    products with the set refuses it; a session over the others does not."""
    import numpy as np

    from tests.store.rows import session_record

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("A2", "B2", "Q1", "Q2"))}
    store.put_fusion_pair("A2~Q1", "A2", "Q1", 1.0, 1.0, "/layers/a.tif", {})
    store.put_fusion_pair("B2~Q2", "B2", "Q2", 2.0, 1.0, "/layers/b.tif", {})
    fused = store.register_feature_set("fused_s1s2", 1, {"weights": [1, 1]}, ["f", "u"],
                                       sensor="S1+S2", sources=("Q1", "Q2"))
    for p, s1 in (("A2", "Q1"), ("B2", "Q2")):
        store.write_features(fused, np.array(ids[p]), np.full((8, 2), 2.0, np.float32))
        store.record_row_sources(fused.feature_set_id, p, [s1])
    assert store.row_sources(fused.feature_set_id) == {"A2": ("Q1",), "B2": ("Q2",)}
    assert store.thinned_rows_from("Q1") == [(store.feature_set(fused.feature_set_id), ("A2",))]
    store.insert_session(session_record("S1", "ana", T0, product_ids=("A2",),
                                        feature_set_ids=(fused.feature_set_id,)))
    store.insert_session(session_record("S2", "ana", T0, product_ids=("B2",),
                                        feature_set_ids=(fused.feature_set_id,)))
    with pytest.raises(StoreError, match=r"used by 1 session\(s\): S1 \(find S1: .*of a "
                       r"fused S1\+S2 set or an archive change set, the rows of its "
                       r"partners or pairs in their scope"):
        store.remove_product("Q1")
    assert store.query(f"SELECT COUNT(*) FROM {fused.table_name}")[0][0] == 16
    store.delete_session("S1")
    dry = store.remove_product("Q1", dry_run=True)
    assert (dry.feature_rows, dry.thinned_sets, dry.dropped_sets) == (
        8, ((fused.feature_set_id, ("A2",)),), ())
    assert store.query(f"SELECT COUNT(*) FROM {fused.table_name}")[0][0] == 16
    r = store.remove_product("Q1")
    assert (r.feature_rows, r.thinned_sets, r.dropped_sets, r.pair_ids) == (
        8, ((fused.feature_set_id, ("A2",)),), (), ("A2~Q1",))
    kept = {pid for (pid,) in store.query(f"SELECT patch_id FROM {fused.table_name}")}
    assert kept == set(ids["B2"])  # session S2's rows, untouched
    assert store.feature_set_sources(fused.feature_set_id) == ["Q2"]
    assert store.row_sources(fused.feature_set_id) == {"B2": ("Q2",)}
    assert store.thinned_rows_from("Q1") == [] and store.product("A2") is not None
    # an S2 product removed takes its own rows and what they were computed from: no
    # later removal names it
    ids["C2"] = add_product(store, "C2", T0 + dt.timedelta(days=7), 701)
    store.write_features(fused, np.array(ids["C2"]), np.ones((8, 2), np.float32))
    store.record_row_sources(fused.feature_set_id, "C2", ["Q2"])
    store.remove_product("C2")
    assert store.row_sources(fused.feature_set_id) == {"B2": ("Q2",)}
    # removing the last S1 partner leaves a set with no partner's rows, still a set
    store.delete_session("S2")
    assert store.remove_product("Q2").thinned_sets == ((fused.feature_set_id, ("B2",)),)
    assert store.query(f"SELECT COUNT(*) FROM {fused.table_name}")[0][0] == 0


def test_removing_a_date_takes_its_pairs_rows_out_of_the_archives_change_set(store):
    """`archive_change_<method>` (eominer.store.archive) holds every change pair's rows on
    the pair's first date: removing a later date takes out the rows of the first dates
    it was paired with, by its recorded pairs (a fused change pair's S1 dates in the
    pair's params too), and keeps the set; removing a first date takes its own rows."""
    import numpy as np

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("A1", "A2", "B1", "B2", "S1"))}
    own = {first: store.register_feature_set(
        "change_cva", 2, {"method": "cva", "first": first, "second": second, **extra},
        ["change_prob_mean"], "S2", sources=(first, second, *extra.values()))
        for first, second, extra in (("A1", "A2", {}),
                                     ("B1", "B2", {"s1_first": "S1", "s1_second": "S1"}))}
    store.record_pair("change", "A1", "A2", method="cva",
                      params={"feature_set_id": own["A1"].feature_set_id})
    store.record_pair("change", "B1", "B2", method="cva",
                      params={"s1_first": "S1", "s1_second": "S1",
                              "feature_set_id": own["B1"].feature_set_id})
    archive = store.register_feature_set("archive_change_cva", 2, {"method": "cva"},
                                         ["change_prob_mean"], "S2",
                                         sources=("A1", "A2", "B1", "B2", "S1"))
    for p, dates in (("A1", ("A2",)), ("B1", ("B2", "S1"))):
        store.write_features(archive, np.array(ids[p]), np.ones((8, 1), np.float32))
        store.record_row_sources(archive.feature_set_id, p, dates)
    fs = store.feature_set(archive.feature_set_id)
    assert store.thinned_rows_from("A2") == [(fs, ("A1",))]
    assert store.thinned_rows_from("S1") == [(fs, ("B1",))]  # the fused pair's S1 date
    assert store.thinned_rows_from("A1") == [(fs, ())]  # its own rows go with its patches
    r = store.remove_product("A2")
    assert (r.feature_rows, r.thinned_sets, r.dropped_sets) == (  # the pair's own set: whole
        8, ((archive.feature_set_id, ("A1",)),), (own["A1"].feature_set_id,))
    kept = {pid for (pid,) in store.query(f"SELECT patch_id FROM {archive.table_name}")}
    assert kept == set(ids["B1"])
    r = store.remove_product("B1")
    assert (r.feature_rows, r.dropped_sets) == (8, (own["B1"].feature_set_id,))
    assert store.feature_set(archive.feature_set_id) is not None
    assert store.query(f"SELECT COUNT(*) FROM {archive.table_name}")[0][0] == 0


def test_the_archive_set_of_each_pair_set(store):
    """`archive_sets_of`: of a model's sets, each change pair's own one -> the archive's
    set of its kind (its parameters less the dates), where one was written: what `apply`
    reads for a product the pair's set has no rows of."""
    for k, p in enumerate(("A1", "A2", "B1", "B2")):
        add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
    own = {first: store.register_feature_set(
        "change_cva", 2, {"method": "cva", "first": first, "second": second},
        ["change_prob_mean"], "S2", sources=(first, second))
        for first, second in (("A1", "A2"), ("B1", "B2"))}
    irmad = store.register_feature_set(
        "change_irmad", 2, {"method": "irmad", "first": "A1", "second": "A2"},
        ["change_prob_mean"], "S2", sources=("A1", "A2"))
    spectral = store.register_feature_set("spectral", 1, {}, ["b04_mean"], "S2")
    ids = [own["A1"].feature_set_id, irmad.feature_set_id, spectral.feature_set_id, "gone"]
    assert store.archive_sets_of(ids) == {}  # no archive set written yet
    archive = store.register_feature_set("archive_change_cva", 2, {"method": "cva"},
                                         ["change_prob_mean"], "S2", sources=("A1", "A2"))
    got = store.archive_sets_of([*ids, own["B1"].feature_set_id])
    assert {k: v.feature_set_id for k, v in got.items()} == {
        own["A1"].feature_set_id: archive.feature_set_id,
        own["B1"].feature_set_id: archive.feature_set_id}  # irmad: another kind, none


def test_a_first_date_of_two_pairs_keeps_the_rows_of_the_pair_that_stays(store):
    """A product that is the first date of two change pairs holds, in the archive's set,
    the rows of the pair recorded last: removing the other pair's later date leaves them;
    removing that pair's later date takes the other pair's rows in their place (its own
    set still holds them: eominer.removal.refill_for, which `products remove` passes)."""
    import numpy as np

    from eominer.removal import refill_for

    def refill(fs, product, gone):
        return refill_for(store, fs, product, gone)

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("A1", "A2", "A3"))}
    archive = store.register_feature_set("archive_change_cva", 2, {"method": "cva"},
                                         ["change_prob_mean"], "S2")
    for k, later in enumerate(("A2", "A3")):  # A1 -> A2 mapped first, then A1 -> A3
        own = store.register_feature_set("change_cva", 2,
                                         {"method": "cva", "first": "A1", "second": later},
                                         ["change_prob_mean"], "S2", sources=("A1", later))
        value = np.full((8, 1), float(k + 1), np.float32)
        store.write_features(own, np.array(ids["A1"]), value)
        store.register_feature_set(archive.name, 2, archive.params, list(archive.columns),
                                   "S2", sources=("A1", later))
        store.write_features(archive, np.array(ids["A1"]), value)
        store.record_row_sources(archive.feature_set_id, "A1", ("A1", later))
        pid = store.record_pair("change", "A1", later, method="cva",
                                params={"feature_set_id": own.feature_set_id})
        store.execute("UPDATE product_pairs SET created = ? WHERE pair_id = ?",
                      (T0 + dt.timedelta(hours=k), pid))

    def rows() -> set[float]:
        return {v for (v,) in store.query(f"SELECT change_prob_mean FROM {archive.table_name}")}

    fs = store.feature_set(archive.feature_set_id)
    assert store.archive_source(fs, "A1").params["second"] == "A3" and rows() == {2.0}
    assert store.thinned_rows_from("A2") == [(fs, ())]  # A1's rows are A1 -> A3's
    r = store.remove_product("A2", refill=refill)
    assert (r.thinned_sets, r.refilled) == (((archive.feature_set_id, ()),), ())
    assert rows() == {2.0} and store.count_features(fs) == 8
    # the pair that wrote them goes: the rows of the one left come back in their place
    ids["A4"] = add_product(store, "A4", T0 + dt.timedelta(days=9), 901)
    own = store.register_feature_set("change_cva", 2,
                                     {"method": "cva", "first": "A1", "second": "A4"},
                                     ["change_prob_mean"], "S2", sources=("A1", "A4"))
    store.write_features(own, np.array(ids["A1"]), np.full((8, 1), 4.0, np.float32))
    pid = store.record_pair("change", "A1", "A4", method="cva",
                            params={"feature_set_id": own.feature_set_id})
    store.execute("UPDATE product_pairs SET created = ? WHERE pair_id = ?",
                  (T0 - dt.timedelta(hours=1), pid))  # recorded before A1 -> A3
    dry = store.remove_product("A3", dry_run=True, refill=refill)
    assert dry.refilled == ((archive.feature_set_id, "A1", own.feature_set_id),)
    assert rows() == {2.0}
    r = store.remove_product("A3", refill=refill)
    assert r.thinned_sets == ((archive.feature_set_id, ("A1",)),)
    assert rows() == {4.0} and store.count_features(fs) == 8


def test_removing_a_product_takes_only_the_rows_computed_from_it(store):
    """What each product's rows of a set kept per product come from is recorded with them
    (`feature_row_sources`), not inferred from the pairs: removing a fused change pair's
    S1 date takes the first date's rows out of the archive's change set (the pair's
    map used its backscatter) but not out of the features of both dates, which come from
    the two S2 dates alone (before, both went)."""
    import numpy as np

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("A1", "A2", "S1"))}
    extra = {"s1_first": "S1", "s1_second": "S1"}
    own = store.register_feature_set(
        "change_fusion", 2, {"method": "fusion", "first": "A1", "second": "A2", **extra},
        ["change_prob_mean"], "S2", sources=("A1", "A2", "S1"))
    store.record_pair("change", "A1", "A2", method="fusion",
                      params={**extra, "feature_set_id": own.feature_set_id})
    archive = store.register_feature_set("archive_change_fusion", 2, {"method": "fusion"},
                                         ["change_prob_mean"], "S2")
    dates = store.register_feature_set("dates_spectral", 1, {"source": "spectral_v1"},
                                       ["a_t1", "a_t2", "a_d"], "S2")
    for fs, sources, width in ((own, (), 1), (archive, ("A2", "S1"), 1), (dates, ("A2",), 3)):
        store.write_features(fs, np.array(ids["A1"]), np.ones((8, width), np.float32))
        if sources:
            store.record_row_sources(fs.feature_set_id, "A1", sources)
    assert {fs.feature_set_id: p for fs, p in store.thinned_rows_from("S1")} == {
        archive.feature_set_id: ("A1",)}
    r = store.remove_product("S1")
    assert r.thinned_sets == ((archive.feature_set_id, ("A1",)),)
    assert r.dropped_sets == (own.feature_set_id,) and r.refilled == ()
    assert store.count_features(store.feature_set(archive.feature_set_id)) == 0
    assert store.count_features(store.feature_set(dates.feature_set_id)) == 8
    assert store.row_sources(dates.feature_set_id) == {"A1": ("A2",)}
    assert store.row_sources(archive.feature_set_id) == {}
    # the second date goes: now the features of both dates lose A1's rows, the set stays;
    # the archive's set, whose rows it no longer feeds, stays as it is (not dropped)
    assert store.feature_set_sources(archive.feature_set_id) == []
    r = store.remove_product("A2")
    assert (r.thinned_sets, r.dropped_sets) == (((dates.feature_set_id, ("A1",)),), ())
    assert store.feature_set(archive.feature_set_id) is not None
    assert store.count_features(store.feature_set(dates.feature_set_id)) == 0
