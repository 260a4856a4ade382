"""`eominer products` on an archive: those of some tiles, dates, sensor or cloud cover, and
the feature sets each one has (what `extract` has left)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.process import run

CITIES = ("bordeaux", "hongkong", "saclay_e", "nantes")


def listed(home: Path, *args: str) -> list[dict]:
    r = run(["products", "--format", "json", *args], home)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_products_of_some_tiles_dates_and_cloud_cover_with_their_feature_sets(
        shared_data: Path, tmp_path: Path):
    home = tmp_path / "ws"
    srcs = [str(shared_data / "oscd/images" / c / "imgs_1") for c in CITIES]
    r = run(["ingest", *srcs, "--levels", "32", "--workers", "0"], home)
    assert r.returncode == 0, r.stderr
    everything = listed(home)
    assert len(everything) == 4
    by_id = {p["product_id"]: p for p in everything}

    def ids(rows: list[dict]) -> set[str]:
        return {p["product_id"] for p in rows}

    tile = everything[0]["tile_id"]
    same_tile = {i for i, p in by_id.items() if p["tile_id"] == tile}
    assert ids(listed(home, "--tile", f"T{tile}")) == same_tile  # as in product names
    assert ids(listed(home, "--tile", f"{tile.lower()},NOPE1")) == same_tile
    day = everything[1]["acquired"][:10]
    on_day = {i for i, p in by_id.items() if p["acquired"][:10] == day}
    assert ids(listed(home, "--since", day, "--until", day)) == on_day  # the whole day
    later = {i for i, p in by_id.items() if p["acquired"][:10] >= day}
    assert ids(listed(home, "--since", day)) == later and len(later) < 4
    covers = sorted({p["cloud_cover"] for p in everything})  # measured by s2cloudless
    limit = (covers[0] + covers[1]) / 2  # between the two lowest covers
    clear = {i for i, p in by_id.items() if p["cloud_cover"] <= limit}
    assert ids(listed(home, "--max-cloud", str(limit))) == clear and 0 < len(clear) < 4

    r = run(["products", "--sensor", "S1"], home)  # none: what there is instead
    assert r.returncode == 0 and "note: none of the 4 products matches; tiles " in r.stderr
    days = sorted(p["acquired"][:10] for p in everything)
    assert tile in r.stderr and f"acquired {days[0]} to {days[-1]}" in r.stderr
    r = run(["products", "--since", "2016-05-01", "--until", "2016-04-01"], home)
    assert r.returncode == 2 and "2016-04-01 is before --since 2016-05-01" in r.stderr

    first, second = everything[0]["product_id"], everything[1]["product_id"]
    r = run(["extract", "--features", "spectral", "--products", f"{first},{second}",
             "--workers", "0"], home)
    assert r.returncode == 0, r.stderr
    from eominer.store import open_store  # an extract cut short: half of one product's rows

    with open_store(f"duckdb:///{home / 'eominer.duckdb'}") as store:
        (fs,) = store.feature_sets("spectral")
        pids = store.patches(second)["patch_id"].to_pylist()
        store.execute(f"DELETE FROM {fs.table_name} WHERE patch_id IN "
                      f"({', '.join('?' * (len(pids) // 2))})", pids[:len(pids) // 2])
    shares = {p["product_id"]: p["feature_sets"] for p in listed(home, "--features")}
    half = 1 - (len(pids) // 2) / len(pids)
    assert shares == {first: "spectral", second: f"spectral {half:.0%}",
                      **{p: "" for p in by_id if p not in (first, second)}}
