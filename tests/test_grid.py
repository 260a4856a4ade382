"""The patch grid's mask fractions (eominer.grid.patch_grid `masks`)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.grid import MASK_CLASSES, patch_grid

UTM = 'PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",15],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32633"]]'
T = (10.0, 0.0, 330000.0, 0.0, -10.0, 5822040.0)


def test_mask_fractions_per_level_and_null_for_absent_classes():
    valid = np.ones((64, 96), bool)
    valid[:, :8] = False  # a nodata strip
    cloud = np.zeros_like(valid)
    cloud[:16, 32:64] = True  # half of patch (0, 1) at 32 px
    t = patch_grid(96, 64, T, UTM, valid, (32, 64), "P", 1, masks={"cloud": cloud})
    lv32 = t.filter(np.asarray(t["level"].to_numpy() == 32))
    assert lv32["cloud_fraction"].to_pylist() == [0.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert lv32["valid_fraction"].to_pylist()[0] == 0.75
    lv64 = t.filter(np.asarray(t["level"].to_numpy() == 64))
    assert lv64["cloud_fraction"].to_pylist() == [0.125]
    for name in MASK_CLASSES[1:]:
        assert t[f"{name}_fraction"].null_count == t.num_rows
    plain = patch_grid(96, 64, T, UTM, valid, (32,), "P", 1)
    assert plain["cloud_fraction"].null_count == plain.num_rows


def test_bad_masks_are_refused():
    valid = np.ones((64, 64), bool)
    with pytest.raises(ValueError, match=r"unknown mask class\(es\) \['clouds'\]"):
        patch_grid(64, 64, T, UTM, valid, (32,), "P", 1, masks={"clouds": valid})
    with pytest.raises(ValueError, match=r"shadow mask is \(32, 32\), the valid mask \(64, 64\)"):
        patch_grid(64, 64, T, UTM, valid, (32,), "P", 1, masks={"shadow": valid[:32, :32]})
