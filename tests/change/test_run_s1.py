"""`eominer change` on two ingested Sentinel-1 products: COGs, pair row, patch scores.

Date 2 is a PLANTED change: the real patch 33UUP_61_41 with a 40 x 40 px block of the real
patch 33UUP_61_40 (its dark water corner), written as a product 12 days later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.change.run import detect_change

DATE1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_41"
DATE2 = "S1A_IW_GRDH_1SDV_20170625T165043_33UUP_61_41"


def planted_second_date(ben: Path, folder: Path) -> Path:
    """Date 2 in `folder`: DATE1's real patch with a 40 x 40 px block of its neighbour."""
    import rasterio

    first = ben / "s1-tiny" / DATE1
    (other,) = (ben / "s1-tiny").glob("*_33UUP_61_40")
    second = folder / DATE2
    second.mkdir(parents=True)
    for pol in ("VV", "VH"):
        with rasterio.open(first / f"{DATE1}_{pol}.tif") as ds, \
                rasterio.open(next(other.glob(f"*_{pol}.tif"))) as src:
            data, profile = ds.read(1), ds.profile
            data[20:60, 30:70] = src.read(1)[0:40, 0:40]
        with rasterio.open(second / f"{DATE2}_{pol}.tif", "w", **profile) as out:
            out.write(data, 1)
    return second


@pytest.fixture
def s1_store(ben, workspace, tmp_path):
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    first = ben / "s1-tiny" / DATE1
    second = planted_second_date(ben, tmp_path)
    url = f"duckdb:///{workspace / 's1.duckdb'}"
    with open_store(url) as store:
        res = ingest_paths(store, [first, second], levels=(20,))
    assert [r.product_id for r in res] == [DATE1, DATE2]
    return url


def test_s1_pair_of_ingested_products_is_recorded(s1_store) -> None:
    from eominer.store import open_store

    with open_store(s1_store) as store:
        run = detect_change(DATE1, DATE2, store=store)  # method: the S1 default
        assert run.method == "rom" and run.sensor == "S1"
        assert run.threshold_rule == "ki-gg+cfar" and run.threshold >= 1.0
        assert run.days_apart == pytest.approx(12.0)
        pair = store.pair(run.pair_id)
        assert pair["params"]["sensor"] == "S1"
        assert pair["params"]["threshold_rule"] == "ki-gg+cfar"
        fs = store.require_feature_set(run.feature_set_id)
        assert fs.name == "change_rom" and fs.sensor == "S1"
        # the 20 px patches inside the planted block are the changed ones
        top = store.changed_patches(run.pair_id, level=20, min_share=0.9)
        windows = store.patches(DATE1, 20)
        inside = {int(p) for p, x, y in zip(windows["patch_id"].to_pylist(),
                                             windows["x_off"].to_pylist(),
                                             windows["y_off"].to_pylist())
                  if 20 <= y <= 40 and 30 <= x <= 50}
        assert set(top["patch_id"].to_pylist()) == inside and len(inside) == 2
    # a second run is resumed from the database, as for S2 pairs
    from eominer.change.run import finished_run, resolve

    with open_store(s1_store) as store:
        prior = finished_run(store, resolve(DATE1, store), resolve(DATE2, store), "rom", 0)
        assert prior is not None and prior.sensor == "S1"
        assert prior.threshold_rule == "ki-gg+cfar"
    assert np.isfinite(prior.threshold)
