"""change/maps.py: a method's distance -> probability -> binary map, on real co-registered pixels."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.change.maps import change_distance, change_map
from eominer.errors import ConfigError


@pytest.mark.parametrize("method", ["cva", "irmad"])
def test_probability_is_in_unit_interval_and_nodata_outside(crop, method) -> None:
    x1, x2, valid = crop
    m = change_map(x1, x2, valid, method)
    p = m.probability
    assert np.isnan(p[~valid]).all()
    assert np.isfinite(p[valid]).all()
    assert p[valid].min() >= 0.0 and p[valid].max() <= 1.0
    assert (m.binary[~valid] == 255).all()
    assert set(np.unique(m.binary[valid])) <= {0, 1}
    assert 0.0 < m.threshold < 1.0
    # the binary map is the probability cut at the threshold
    assert ((p[valid] > m.threshold) == (m.binary[valid] == 1)).all()


def test_unknown_method_and_mismatched_grids_are_refused(crop) -> None:
    x1, x2, valid = crop
    with pytest.raises(ConfigError, match="unknown change method 'pca'"):
        change_distance("pca", x1, x2, valid)
    with pytest.raises(ConfigError, match="must share one grid"):
        change_distance("cva", x1, x2[:, :100], valid)
