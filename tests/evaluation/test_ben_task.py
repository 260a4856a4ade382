"""The BigEarthNet v2 mining task on the real v2_mock folder (24 LMDB patches): patches
placed by their names, written and ingested as products, their BEN-19 labels as truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eominer.errors import ProductReadError
from eominer.evaluation.ben_products import patch_transform
from eominer.evaluation.tasks import bigearthnet_tasks
from tests.conftest import fresh_workspace


def test_patch_names_place_the_v1_patches_where_their_geotiffs_are(ben: Path) -> None:
    import rasterio

    errors = {}
    for folder in sorted((ben / "s2-tiny").iterdir()):
        meta = json.loads(next(folder.glob("*_labels_metadata.json")).read_text())
        tile = meta["tile_source"].split("_T")[-1][:5]
        stem, x, y = folder.name.rsplit("_", 2)
        epsg, (ulx, uly) = patch_transform(f"{stem}_T{tile}_{x}_{y}")
        with rasterio.open(next(folder.glob("*_B02.tif"))) as ds:
            assert ds.crs.to_epsg() == epsg
            errors[f"{tile} {x}_{y}"] = (ulx - ds.transform.c, uly - ds.transform.f)
    # T29UPU's corner is its MGRS corner; T29SND's is 20 m west of it (499,980 m)
    assert errors == {"29UPU 36_85": (0.0, 0.0), "29UPU 4_55": (0.0, 0.0),
                      "29SND 56_35": (20.0, 0.0)}
    with pytest.raises(ProductReadError, match="not a BigEarthNet patch name"):
        patch_transform("S2A_MSIL2A_20170617T113321_36_85")


@pytest.fixture(scope="module")
def ben_tasks(tmp_path_factory, ben: Path):
    with fresh_workspace(tmp_path_factory, "ben_ws") as (home, store):
        tasks, notes = bigearthnet_tasks(store, ben / "v2_mock", home)
        yield store, tasks, notes


def test_v2_patches_become_one_patch_products_with_their_labels(ben_tasks, ben) -> None:
    import pyarrow.parquet as pq
    import rasterio

    from eominer.evaluation.bigearthnet import read_v2
    from eominer.fusion.labels import to_ben19

    store, tasks, notes = ben_tasks
    rows = [r for f in ("metadata.parquet", "metadata_for_patches_with_snow_cloud_or_shadow"
                        ".parquet") for r in pq.read_table(ben / "v2_mock" / f).to_pylist()]
    assert len(rows) == 24
    water = next(t for t in tasks if t.name == "ben_inland_waters")
    assert len(water.patch_ids) == 24 and water.level == 120
    # each pool patch is the one patch of its product; its truth is its parquet labels
    t = store.patches(level=120)
    product_of = dict(zip(t["patch_id"].to_pylist(), t["product_id"].to_pylist(), strict=True))
    labels = {r["patch_id"].replace("_N9999", ""): to_ben19(list(r["labels"])) for r in rows}
    truth = [1 if "Inland waters" in labels[product_of[int(i)]] else -1
             for i in water.patch_ids]
    assert water.y.tolist() == truth and water.positives == sum(
        "Inland waters" in v for v in labels.values()) >= 2
    # the product's pixels are the LMDB's reflectance x 10000
    p0 = next(p for p in read_v2(ben / "v2_mock")[0] if p.patch_id.endswith("T33UUP_37_88"))
    prod = store.product(p0.patch_id.replace("_N9999", ""))
    with rasterio.open(prod.ard_path) as ds:
        b02 = ds.read(list(prod.bands).index("B02") + 1)
    np.testing.assert_array_equal(b02, np.rint(p0.s2[1] * 1e4))
    assert {t.concept for t in tasks} >= {"forest", "inland_waters", "pastures"}


def test_a_folder_without_v2_metadata_is_one_clear_message(ben_tasks, tmp_path) -> None:
    with pytest.raises(ProductReadError, match="no BigEarthNet v2 folder under .*: expected "
                       "a folder with metadata.parquet"):
        bigearthnet_tasks(ben_tasks[0], tmp_path, tmp_path)
