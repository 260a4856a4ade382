"""`eominer timeseries` on ingested products whose NDVI series is the real eo-learn
TestEOPatch's (68 dates over Slovenia, 2015-07 to 2017-12): each date is written as a
4-band product (B02, B03, B04 of the EOPatch's clear reference scene; B08 such that
(B08 - B04) / (B08 + B04) is that date's real NDVI), with no data where the EOPatch's
own cloud mask says the date is not clear. A break is PLANTED: a 20 x 20 px block set to
bare soil (NDVI 0.15) from date 44 (2017-06-20) on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from compute.series import run_series
from eominer.change.series import BREAK_COLUMNS
from eominer.change.timeseries import (
    TEMPORAL_COLUMNS,
    day_numbers,
    largest_break,
    patch_descriptors,
    patch_series,
)
from eominer.errors import ConfigError
from eominer.evaluation.eolearn import EPSG, PIXEL_M, REFERENCE_SCENE, read_eopatch
from eominer.ingest import ingest_paths
from eominer.io.ard import read_ard
from eominer.store import open_store
from tests.cli.process import in_process

PLANTED_AT = 44
BLOCK = (slice(40, 60), slice(40, 60))
LEVELS = (10, 20)


def write_date(eop, t: int, folder: Path) -> Path:
    scene = eop.scenes[REFERENCE_SCENE]  # eo-learn's L1C order: B01, B02, B03, B04, ...
    ndvi = eop.ndvi[t].astype(np.float64).copy()
    if t >= PLANTED_AT:
        ndvi[BLOCK] = 0.15
    blue, green, red = (np.clip(np.rint(scene[..., i] * 1e4), 1, 9999) for i in (1, 2, 3))
    nir = np.clip(np.rint(red * (1 + ndvi) / (1 - ndvi)), 1, 65535)
    dn = np.stack([blue, green, red, nir]).astype(np.uint16)
    dn[:, ~eop.clear[t]] = 0  # not clear in the EOPatch's own mask: no data
    name = f"TestEOPatch_MSIL1C_{eop.dates[t].replace('-', '').replace(':', '')[:15]}.tif"
    profile = {"driver": "GTiff", "width": dn.shape[2], "height": dn.shape[1], "count": 4,
               "dtype": "uint16", "crs": f"EPSG:{EPSG}", "nodata": 0,
               "transform": from_origin(*eop.top_left, PIXEL_M, PIXEL_M)}
    with rasterio.open(folder / name, "w", **profile) as ds:
        ds.write(dn)
        for i, band in enumerate(("B02", "B03", "B04", "B08"), 1):
            ds.set_band_description(i, band)
    return folder / name


@pytest.fixture(scope="module")
def stack(shared_data: Path, tmp_path_factory):
    """(database URL, product ids by date, the EOPatch), 68 products ingested."""
    eop = read_eopatch(shared_data)
    home = tmp_path_factory.mktemp("series")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        url = f"duckdb:///{home / 'series.duckdb'}"
        files = home / "products"
        files.mkdir()
        paths = [write_date(eop, t, files) for t in range(len(eop.dates))]
        with open_store(url) as store:
            ids = [r.product_id for r in ingest_paths(store, paths, levels=LEVELS)]
    return url, home, ids, eop


def own_series(store, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The products' NDVI and clear mask read back from their ARDs, by hand."""
    prods = [store.product(p) for p in ids]
    values, clear = [], []
    for p in prods:
        dn = read_ard(p.ard_path).astype(np.float64)
        red, nir = dn[p.bands.index("B04")], dn[p.bands.index("B08")]
        with np.errstate(all="ignore"):
            values.append((nir - red) / (nir + red))
        clear.append((dn != 0).all(axis=0))
    return np.array(values), np.array(clear), [p.acquired.isoformat() for p in prods]


def test_the_stacks_descriptors_and_breaks_are_the_series_models(stack, monkeypatch):
    url, home, ids, eop = stack
    monkeypatch.setenv("EOMINER_HOME", str(home))
    with open_store(url) as store:
        # on a local Ray of 2 workers, one task per band of rows; any order: by date
        r = run_series(store, list(reversed(ids)), num_cpus=2, num_workers=2)
        assert (r.tasks_done, r.failed, r.in_process) == (1, [], False)
        values, clear, dates = own_series(store, ids)
        plan = r.plan
        assert plan.dates == dates and plan.ref.product_id == ids[-1]
        assert plan.resampled == []
        days = day_numbers(dates)
        for level in LEVELS:
            t = store.patches(ids[-1], level)
            x, y, s = (t[c].to_numpy() for c in ("x_off", "y_off", "size_px"))
            want = patch_descriptors(values, clear, days, x, y, s)
            got = store.read_features([plan.temporal.feature_set_id], [ids[-1]], level)[1]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
            assert (got[:, 5] == 0).mean() > 0.9  # seasonal models, not NaN with a reason
            assert 0.3 < np.nanmedian(got[:, 0]) < 0.9  # a vegetated valley's mean NDVI
            med, ok = patch_series(values, clear, level)
            br = largest_break(med[:, y // level, x // level], ok[:, y // level, x // level],
                               days)
            brk = store.read_features([plan.breaks.feature_set_id], [ids[-1]], level)[1]
            np.testing.assert_allclose(brk[:, 1], br.size, rtol=1e-5, equal_nan=True)
            inside = (x >= 40) & (x + s <= 60) & (y >= 40) & (y + s <= 60)
            assert inside.sum() == (4 if level == 10 else 1)
            # the planted break: found, at its date within one clear acquisition, a drop
            when = np.asarray([d[:10] for d in dates])
            first = np.flatnonzero(ok[PLANTED_AT:, y[inside] // level, x[inside] // level]
                                   .any(axis=1))[0] + PLANTED_AT
            for k in np.flatnonzero(inside):
                assert brk[k, 3] == 0 and brk[k, 1] < -0.2, brk[k]
                found = int(br.index[k])
                assert abs(found - first) <= 1, (when[found], when[first])
        assert r.levels[10][0] == 100 and r.levels[10][1] >= 4
        again = run_series(store, ids, num_workers=0)  # the same stack: nothing to redo
        assert (again.tasks_skipped, again.tasks_done) == (1, 0)
    assert TEMPORAL_COLUMNS[0] == "ts_mean" and BREAK_COLUMNS[0] == "ts_break_year"


def test_the_command_and_its_refusals(stack, tmp_path, capsys):
    url, home, ids, _ = stack
    run = in_process(capsys)
    r = run(["timeseries", *ids[:30], "--level", "20", "--workers", "0", "--db", url], home)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if not ln.startswith("timeseries ")]  # bar
    assert lines[0].startswith("30 dates, 2015-07-11 to ") and ids[29] in lines[0]
    assert lines[1].startswith("level 20: 25 patches, ")
    with open_store(url, read_only=True) as store:
        fs = store.require_feature_set(lines[-1].split()[0])
        assert fs.name == "ts_breaks" and fs.params["dates"] == 30
        year = store.query(f"SELECT MIN(ts_break_year), MAX(ts_break_year) FROM "
                           f"{fs.table_name} WHERE ts_break_reason_code = 0")[0]
    assert all(v is None or 2015.5 < v < 2017.0 for v in year)  # the first 30 dates
    assert f"FROM {fs.table_name} WHERE ts_break_reason_code = 0" in r.stderr
    for args, said in (
        (ids[:2], "needs at least 3 products"),
        ([*ids[:3], "S2_NOPE"], "S2_NOPE are not in"),
        ([*ids[:3], "--on", ids[5]], f"--on {ids[5]} is not among"),
        ([*ids[:3], "--level", "32"], "has no patches at level(s) [32]"),
        ([*ids[:3], "--index", "ndbi"], "lack band B11 or B08 for NDBI"),
    ):
        r = run(["timeseries", *args, "--workers", "0", "--db", url], home)
        assert r.returncode == 1 and said in r.stderr, (args, r.stderr)
    r = run(["timeseries", "--db", url], home)
    assert r.returncode == 2 and "give the products' ids, or --tile" in r.stderr


def test_a_product_on_another_grid_is_resampled_onto_the_stacks(stack, monkeypatch):
    """A crop of one date (its top-left 60 x 60 px): read through a warped VRT onto the
    stack's grid, no data outside its footprint."""
    url, home, ids, eop = stack
    monkeypatch.setenv("EOMINER_HOME", str(home))
    crop = home / "crop"
    crop.mkdir(exist_ok=True)
    with rasterio.open(write_date(eop, 10, crop)) as src:
        data, profile = src.read(window=((0, 60), (0, 60))), src.profile
    path = crop / src.name.split("/")[-1].replace("_MSIL1C_", "Crop_MSIL1C_")
    with rasterio.open(path, "w", **profile | {"width": 60, "height": 60}) as dst:
        dst.write(data)
        for i, band in enumerate(("B02", "B03", "B04", "B08"), 1):
            dst.set_band_description(i, band)
    with open_store(url) as store:
        (c,) = ingest_paths(store, [path], levels=LEVELS)
        stack_ids = [*ids[:10], c.product_id, *ids[11:20]]
        r = run_series(store, stack_ids, levels=[20], num_workers=0)
        assert r.plan.resampled == [c.product_id]
        assert r.levels[20][0] == 25
        with pytest.raises(ConfigError, match="acquired at the same time"):
            run_series(store, [*ids[:20], c.product_id], num_workers=0)
    assert json.dumps(r.levels)  # plain numbers


def test_removing_a_product_of_the_stack_drops_its_series(stack, tmp_path, capsys):
    """The series' sets live on the grid product's patches but come from every date's
    pixels: `products remove` of another date drops both sets whole (a copy of the
    stack's database, which keeps the ARD files its original names)."""
    import shutil

    url, home, ids, _ = stack
    copy = tmp_path / "copy.duckdb"
    shutil.copy(url.removeprefix("duckdb:///"), copy)
    curl = f"duckdb:///{copy}"
    with open_store(curl) as store:
        r = run_series(store, ids[:5], levels=[20], num_workers=0)
        sets = sorted([r.plan.temporal.feature_set_id, r.plan.breaks.feature_set_id])
        assert all(store.feature_set_sources(f) == sorted(ids[:5]) for f in sets)
        # the module's other tests' series hold ids[1] too, when they ran before
        sourced = [f.feature_set_id for f in store.feature_sets_from(ids[1])]
        assert set(sets) <= set(sourced)
        others = {f.feature_set_id for f in store.feature_sets()} - set(sourced)
    run = in_process(capsys)
    out = run(["products", "remove", ids[1], "--yes", "--db", curl], home)
    assert out.returncode == 0, out.stderr
    assert f"dropped {len(sourced)} feature set(s) computed from its pixels for other " \
           f"products' patches: {', '.join(sourced)}" in out.stdout
    with open_store(curl, read_only=True) as store:
        assert all(store.feature_set(f) is None for f in sourced)
        assert store.product(ids[4]) is not None  # the grid's product stays
        assert {f.feature_set_id for f in store.feature_sets()} == others
    with open_store(url, read_only=True) as original:
        assert Path(original.product(ids[1]).ard_path).is_file()  # named by the original
