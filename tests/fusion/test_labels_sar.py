from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from eominer.errors import FeatureError, ProductReadError
from eominer.fusion import sar
from eominer.fusion.labels import BEN19, Vocabulary, to_ben19


def test_corine43_names_map_to_the_19_classes():
    got = to_ben19(["Discontinuous urban fabric", "Non-irrigated arable land", "Water courses",
                    "Transitional woodland/shrub", "Road and rail networks and associated land"])
    assert got == ("Urban fabric", "Arable land", "Transitional woodland, shrub",
                   "Inland waters")
    assert to_ben19(["Pastures", "Pastures"]) == ("Pastures",)


def test_unknown_label_is_an_error():
    with pytest.raises(FeatureError, match="unknown land-cover label 'Lava fields'"):
        to_ben19(["Lava fields"], "x.json")


def test_vocabulary_encodes_and_refuses_foreign_labels():
    v = Vocabulary(("Pastures", "Arable land"))
    assert v.encode([["Arable land"], ["Pastures", "Arable land"], []]).tolist() == [
        [0, 1], [1, 1], [0, 0]]
    with pytest.raises(FeatureError, match="'Mixed forest' is not in the model's vocabulary"):
        v.encode([["Mixed forest"]])
    with pytest.raises(FeatureError, match="not trained with: \\['Mixed forest'\\]"):
        v.require_same(Vocabulary(("Pastures", "Arable land", "Mixed forest")))
    with pytest.raises(FeatureError, match="same labels in another order"):
        v.require_same(Vocabulary(("Arable land", "Pastures")))
    assert Vocabulary.present([["Pastures"], ["Urban fabric"]]).names == (
        "Urban fabric", "Pastures")
    assert len(BEN19) == 19


def test_db_and_linear_are_told_apart(ben):
    import rasterio

    path = next((ben / "s1-tiny").glob("*/*_VV.tif"))
    with rasterio.open(path) as ds:
        db = ds.read(1)
    assert sar.detect_scale(db) == "db"
    lin = sar.to_linear(db)
    assert sar.detect_scale(lin) == "linear"
    np.testing.assert_allclose(sar.to_db(lin), db, atol=1e-4)
    np.testing.assert_allclose(sar.as_db(lin), db, atol=1e-4)
    with pytest.raises(ProductReadError, match="looks like linear power"):
        sar.require_db(lin, "S1 patch x")
    with pytest.raises(ProductReadError, match="neither dB nor linear"):
        sar.detect_scale(np.full(10, 500.0))


def test_resampling_averages_linear_power_not_db():
    # columns alternate -10 / -20 dB; half a pixel to the right, each output pixel is the
    # 50/50 mix: 10*log10((0.1 + 0.01) / 2) = -12.6 dB, not the dB mean -15
    src = np.tile(np.array([-10.0, -20.0], np.float32), (8, 4))[None]
    crs = CRS.from_epsg(32633)
    out = sar.resample_to_grid(src, from_origin(0, 80, 10, 10), crs,
                               from_origin(5, 80, 10, 10), crs, (8, 7))
    inner = out[0, 2:-2, 1:-1]
    np.testing.assert_allclose(inner, 10 * np.log10(0.055), atol=0.05)
    same = sar.resample_to_grid(src, from_origin(0, 80, 10, 10), crs,
                                from_origin(0, 80, 10, 10), crs, (8, 8))
    np.testing.assert_allclose(same, src, atol=1e-4)
