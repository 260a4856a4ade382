"""fusion/cloud.py: which optical pixels and patches are usable, and the test cloud."""

from __future__ import annotations

import numpy as np

from eominer.fusion import cloud
from eominer.fusion.bands import S2_FUSION_BANDS


def test_nodata_and_bright_blue_and_swir_pixels_are_invalid_snow_is_not():
    s2 = np.full((12, 2, 2), 0.1, np.float32)
    blue, swir = S2_FUSION_BANDS.index("B02"), S2_FUSION_BANDS.index("B11")
    s2[:, 0, 0] = 0.0                     # no data
    s2[[blue, swir], 0, 1] = 0.3          # cloud: bright in the blue and the SWIR
    s2[blue, 1, 0] = 0.6                  # snow: bright in the blue, dark in the SWIR
    s2[3, 1, 1] = np.nan
    assert cloud.valid_mask(s2).tolist() == [[False, False], [True, False]]
    assert cloud.valid_fraction(s2) == 0.25


def test_a_recorded_cloud_fraction_takes_precedence():
    assert cloud.usable(0.5) and not cloud.usable(0.49)
    assert not cloud.usable(1.0, cloud_fraction=0.6)
    assert cloud.usable(0.8, cloud_fraction=float("nan"))
    assert cloud.usable(0.3, min_valid=0.25)


def test_cloud_over_covers_the_given_fraction_of_rows():
    s2 = np.full((12, 10, 4), 0.05, np.float32)
    out = cloud.cloud_over(s2, fraction=0.3, seed=1)
    assert s2.max() == np.float32(0.05)   # the input is left as it was
    cloudy_rows = np.flatnonzero(out[0].max(axis=1) == 0.5)
    assert len(cloudy_rows) == 3 and np.all(np.diff(cloudy_rows) == 1)
    assert cloud.valid_fraction(out) == 0.7
    assert np.all(out[S2_FUSION_BANDS.index("B11"), cloudy_rows] == np.float32(0.35))
