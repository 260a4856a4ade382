"""features/blocks.py: ARD digital numbers to physical units, and the bands a descriptor
needs located in a product's ARD. (Block reads with a halo are checked against the
whole band in tests/compute/test_extract.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import MissingBandError
from eominer.features.blocks import band_indexes, to_physical


def test_s2_digital_numbers_become_reflectance_and_0_nodata_nan():
    raw = np.array([[[0, 10000], [2500, 1]]], np.uint16)
    out = to_physical(raw, "S2")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[[np.nan, 1.0], [0.25, 1e-4]]], np.float32))


def test_s1_db_is_returned_as_is():
    db = np.array([[[-12.5, np.nan]]], np.float32)
    out = to_physical(db, "S1")
    assert out is db


def test_band_indexes_are_1_based_in_the_wanted_order_and_missing_bands_named():
    assert band_indexes(["B02", "B03", "B04", "B08"], ["B08", "B04"], "p") == [4, 3]
    with pytest.raises(MissingBandError,
                       match="product S2X lacks band\\(s\\) B11, B12: its ARD has B02, B04"):
        band_indexes(["B02", "B04"], ["B04", "B11", "B12"], "S2X")
