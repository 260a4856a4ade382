"""eominer.store.catalog (products, patches) on every engine of the contract."""

from __future__ import annotations

import datetime as dt

import pytest

from eominer.errors import StoreError
from eominer.store.records import (
    PatchWindow,
    Product,
)
from tests.store.rows import T0, add_product


def test_products_read_back_typed(store):
    assert store.product_list() == [] and store.product("P1") is None
    add_product(store, "P2", T0 + dt.timedelta(days=3), 101)
    add_product(store, "P1", T0, 1, levels=(32, 64, 128))
    got = store.product("P1")
    assert got.bands == ("B04", "B08") and got.transform == (10.0, 0.0, 0.0, 0.0, -10.0, 0.0)
    assert (got.acquired, got.width, got.n_patches, got.source_hash) == (T0, 128, 12, "hP1")
    assert got.bounds == (0.0, -1280.0, 1280.0, 0.0) and got.band_index("B08") == 2
    assert isinstance(got.ingested, dt.datetime)
    assert [p.product_id for p in store.product_list()] == ["P1", "P2"]
    assert store.product_list()[1].n_patches == 8
    assert store.product("P9") is None
    with pytest.raises(KeyError, match="band B02 missing in product P1: expected one of B04"):
        got.band_index("B02")
    with pytest.raises(ValueError, match="transform must have 6 numbers"):
        Product.create(product_id="X", sensor="S2", crs="c", footprint_wkt="w",
                       source_path="s", ard_path="a", width=1, height=1, bands=["B02"],
                       transform=[1.0, 0.0])


def test_products_of_tiles_a_sensor_days_and_a_cloud_cover(store):
    """`eominer products --tile --sensor --since --until --max-cloud`, as bound
    parameters: S1 has no clouds (kept), an optical product of unknown cover is not."""
    day = dt.timedelta(days=1)
    add_product(store, "P1", T0, 1)
    add_product(store, "P2", T0 + 3 * day, 101)
    add_product(store, "P3", T0 + 10 * day, 201)
    add_product(store, "P4", T0 + 11 * day, 301)
    store.execute("UPDATE products SET cloud_cover = ? WHERE product_id = ?", (5.0, "P1"))
    store.execute("UPDATE products SET tile_id = ?, cloud_cover = ? WHERE product_id = ?",
                  ("31UDQ", 40.0, "P2"))
    store.execute("UPDATE products SET sensor = ? WHERE product_id = ?", ("S1", "P3"))

    def ids(**kw) -> list[str]:
        return store.products(**kw)["product_id"].to_pylist()

    assert ids() == ["P1", "P2", "P3", "P4"]
    assert ids(tiles=["31UDQ"]) == ["P2"] and ids(tiles=["31UDQ", "T30TXQ"]) == ids()
    assert ids(tiles=["NOPE"]) == [] and ids(sensor="S1") == ["P3"]
    assert ids(since=T0 + day) == ["P2", "P3", "P4"]
    assert ids(since=T0 + 3 * day, before=T0 + 10 * day) == ["P2"]  # [since, before)
    assert ids(max_cloud=10) == ["P1", "P3"]  # P4's cover is not known
    assert ids(max_cloud=50, sensor="S2") == ["P1", "P2"]
    assert store.products(tiles=["31UDQ"])["patches"].to_pylist() == [8]


def test_patch_windows(store):
    add_product(store, "P1", T0, 1)
    assert store.patch_windows([]) == []
    assert store.patch_windows([4, 1]) == [PatchWindow(4, "P1", 32, 32, 32),
                                           PatchWindow(1, "P1", 0, 0, 32)]
    assert store.patch_windows([6])[0].square == (64, 0, 64)
    with pytest.raises(StoreError, match=r"patch\(es\) \[99\] are not in"):
        store.patch_windows([1, 99])
    with pytest.raises(ValueError, match="expected offsets >= 0 and a positive size"):
        PatchWindow(1, "P1", -1, 0, 32)


def test_patch_ids_taken_meanwhile_are_renumbered_in_the_transaction(store):
    """Two ingests at once numbered their grids from the same MAX(patch_id): the second
    to commit is renumbered after the first, its parents with it (MonetDB's race)."""
    first = add_product(store, "P1", T0, 1)  # ids 1..8
    second = add_product(store, "P2", T0, 1)  # numbered from 1 too: renumbered to 9..16
    assert first == list(range(1, 9)) and second == list(range(9, 17))
    rows = store.query("SELECT patch_id, level, parent_id FROM patches WHERE product_id = ? "
                       "ORDER BY patch_id", ("P2",))
    assert [r[0] for r in rows] == list(range(9, 17))
    assert [r[2] for r in rows] == [13, 13, 13, 13, None, None, None, None]  # 32 px -> 64 px
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 16


def test_patches_by_id_their_products_and_the_cloudy_ones(store):
    """The patch rows other layers ask for (an export's polygons, a search's examples, a
    session's `max_cloud` note), as bound parameters."""
    p1 = add_product(store, "P1", T0, 1)  # level 32: clouds None, 0.1, 0.2, 0.3
    p2 = add_product(store, "P2", T0 + dt.timedelta(days=3), 101)
    t = store.patches_by_id([p2[1], p1[2], 999, p1[2]])  # any order, repeats, unknown
    assert t.column_names == ["patch_id", "product_id", "x_off", "y_off", "size_px"]
    assert t["patch_id"].to_pylist() == [p1[2], p2[1]]
    assert t["product_id"].to_pylist() == ["P1", "P2"]
    assert (t["x_off"].to_pylist(), t["y_off"].to_pylist()) == ([0, 32], [32, 0])
    assert store.patches_by_id([]).num_rows == 0 and store.patches_by_id([999]).num_rows == 0
    assert store.products_of_patches([p2[0], p1[0], p1[3]]) == ["P1", "P2"]
    assert store.products_of_patches([999]) == []
    assert store.cloudy_patches(["P1"], 32, 0.15) == 2  # 0.2 and 0.3; unknown is not cloudy
    assert store.cloudy_patches(["P1", "P2"], 32, 0.25) == 2
    assert store.cloudy_patches(["P1"], 64, 0.0) == 3 and store.cloudy_patches([], 32, 0) == 0


def test_which_products_exist_and_the_next_patch_id(store):
    assert store.next_patch_id() == 1 and not store.product_exists("P1")
    add_product(store, "P1", T0, 1)
    add_product(store, "P2", T0, 101)
    assert store.product_exists("P1") and not store.product_exists("P9")
    many = [f"X{i}" for i in range(1200)] + ["P2", "P1"]  # past one statement's 500
    assert store.existing_products(many) == {"P1", "P2"}
    assert store.existing_products([]) == set()
    assert store.next_patch_id() == 109  # P2's 8 patches from 101
