"""The OSCD reader: cities, labels, aligned pairs and labelled patches."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import ProductReadError, SessionError
from eominer.evaluation import oscd
from eominer.evaluation.patches import pair_feature_names


def test_cities_and_labels(oscd_root) -> None:
    cities = oscd.list_cities(oscd_root)
    assert "bordeaux" in cities and set(cities) <= set(oscd.OSCD_CITIES)
    truth = oscd.read_labels(oscd_root, "bordeaux")
    assert truth.dtype == bool and 0 < truth.mean() < 0.5
    with pytest.raises(ProductReadError, match="labels of atlantis missing: expected"):
        oscd.read_labels(oscd_root, "atlantis")


def test_bad_folders_are_named(tmp_path) -> None:
    with pytest.raises(ProductReadError, match="labels is missing: --data must be an OSCD"):
        oscd.list_cities(tmp_path)
    with pytest.raises(ProductReadError, match="imgs_1 is missing \\(expected imgs_1 and"):
        oscd.load_city(tmp_path, "bercy")
    with pytest.raises(SessionError, match="no OSCD data under"):
        oscd.oscd(tmp_path)


def test_city_patches_share_the_label_grid(shared_data, oscd_root) -> None:
    X, share = oscd.oscd_city(shared_data, "bordeaux", 16)
    truth = oscd.read_labels(oscd_root, "bordeaux")
    nr, nc = truth.shape[0] // 16, truth.shape[1] // 16
    assert X.shape == (nr * nc, len(pair_feature_names())) and X.dtype == np.float32
    assert share[nc + 1] == pytest.approx(truth[16:32, 16:32].mean())
    assert ((share > oscd.OSCD_CHANGE_SHARE).mean()) > 0.01
