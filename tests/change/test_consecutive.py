"""`eominer change --consecutive` (eominer.change.consecutive): pairs of consecutive dates of
one place, from the catalogue. Paris and Bercy are crops of one tile (31UDQ) on the same
two days: one tile, two places."""

from __future__ import annotations

import datetime as dt

import pytest

from eominer.change.consecutive import consecutive_pairs
from eominer.cli import main

DAY = dt.datetime(2021, 1, 1)
SQUARE = "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))"


def test_consecutive_dates_of_each_place_are_mapped(oscd, db_url, capsys):
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    with open_store(db_url) as store:
        ids = {c: [r.product_id for r in ingest_paths(
            store, [oscd / "images" / c / "imgs_1", oscd / "images" / c / "imgs_2"],
            levels=(64,))] for c in ("paris", "bercy")}
        tiles = {r["product_id"]: r["tile_id"] for r in store.products().to_pylist()}
    assert set(tiles.values()) == {"31UDQ"}  # one tile, two crops of it
    with pytest.raises(SystemExit, match="^2$"):  # the filters go with --consecutive
        main(["change", ids["paris"][0], ids["paris"][1], "--tile", "31UDQ", "--db", db_url])
    assert "choose the products of --consecutive" in capsys.readouterr().err
    main(["change", "--consecutive", "--tile", "T31UDQ", "--method", "cva", "--workers", "0",
          "--db", db_url])
    out, err = capsys.readouterr()
    assert "note: 2 pair(s) of consecutive dates (S2 tile 31UDQ (1): 1, S2 tile 31UDQ (2): 1)" in err
    assert "2 of 2 pair(s) done (0 by an earlier run), 0 failed" in err
    with open_store(db_url) as store:
        pairs = {(r["first_id"], r["second_id"]) for r in store.pairs(kind="change").to_pylist()}
    assert pairs == {tuple(ids["paris"]), tuple(ids["bercy"])}
    assert f"{ids['paris'][0]} -> {ids['paris'][1]}  cva  changed" in out
    # again: nothing to compute; a date range that holds one date of each: no pair
    main(["change", "--consecutive", "--method", "cva", "--workers", "0", "--db", db_url])
    assert "2 of 2 pair(s) done (2 by an earlier run)" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^2$"):
        main(["change", "--consecutive", "--since", "2017-01-01", "--db", db_url])
    assert "no two dates of one place among the 2 product(s) chosen" in capsys.readouterr().err


def _s2(pid: str, days: int, tile: str = "31UDQ", transform: str = "t") -> dict:
    return {"product_id": pid, "sensor": "S2", "tile_id": tile, "crs": "EPSG:32631",
            "transform": transform, "width": 10980, "height": 10980,
            "acquired": DAY + dt.timedelta(days=days), "relative_orbit": None,
            "orbit_direction": None, "footprint_wkt": SQUARE}


def _s1(pid: str, days: int, orbit: int, shift: float = 0.0, direction="ASCENDING") -> dict:
    box = (f"POLYGON(({shift} 0, {shift + 1} 0, {shift + 1} 1, {shift} 1, {shift} 0))")
    return {"product_id": pid, "sensor": "S1", "tile_id": None, "crs": "EPSG:32631",
            "transform": f"t{pid}", "width": 100, "height": 100,
            "acquired": DAY + dt.timedelta(days=days), "relative_orbit": orbit,
            "orbit_direction": direction, "footprint_wkt": box}


def test_places_order_and_what_is_not_a_pair():
    rows = [
        _s2("c", 20), _s2("a", 0), _s2("b", 10),  # one tile, out of order
        _s2("b2", 10),  # the same instant as b: not a pair with it
        _s2("x", 5, tile="31UDQ", transform="crop"),  # another grid of the tile: alone
        _s2("y", 3, tile="32ULU"), _s2("z", 9, tile="32ULU"),
        _s1("s", 0, 88), _s1("t", 12, 88, shift=0.4), _s1("u", 24, 88, shift=0.95),
        _s1("v", 6, 88, direction="DESCENDING"), _s1("w", 12, 15),
    ]
    found = consecutive_pairs(rows)
    assert found.pairs == [("s", "t"), ("a", "b"), ("b2", "c"), ("y", "z")]
    assert found.places == {"S1 orbit 88 ascending": 1, "S2 tile 31UDQ (2)": 2,
                            "S2 tile 32ULU": 1}  # 31UDQ (1): the crop, alone
    assert found.notes == [
        "S1 orbit 88 ascending: t and u overlap by 45% of the smaller (at least 50%): not a pair",
        "S2 tile 31UDQ (2): b and b2 are of one instant: not a pair"]
    assert consecutive_pairs([_s2("a", 0)]).pairs == [] and consecutive_pairs([]).pairs == []
