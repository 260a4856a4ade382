"""Harness features through the registry equal the direct numpy statistics."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation.bandfolder import read_bands
from eominer.evaluation.patches import (
    block_view,
    label_share,
    pair_feature_names,
    pair_stats,
    single_feature_names,
    single_stats,
)
from eominer.sensors import S2_BAND_ORDER


@pytest.fixture(scope="module")
def dates(shared_data):
    base = shared_data / "oscd" / "images" / "bordeaux"
    a1 = read_bands(base / "imgs_1")[:, :96, :160]
    return a1, read_bands(base / "imgs_2", (a1.shape[1], a1.shape[2]))


def test_single_stats_are_block_means_and_stds(dates) -> None:
    a, _ = dates
    X = single_stats(a, 16)
    v = block_view(a, 16)
    assert X.shape == (60, len(single_feature_names()))
    np.testing.assert_array_equal(X[:, :13], v.mean(2))
    np.testing.assert_array_equal(X[:, 13:26], v.std(2))
    at = {b: i for i, b in enumerate(S2_BAND_ORDER)}
    b8, b4 = a[at["B08"]], a[at["B04"]]
    ndvi = np.divide(b8 - b4, b8 + b4, out=np.zeros_like(b8), where=b8 + b4 > 0)
    np.testing.assert_array_equal(X[:, 26], block_view(ndvi[None], 16).mean(2)[:, 0])


def test_pair_stats_layout(dates) -> None:
    a1, a2 = dates
    X = pair_stats(a1, a2, 16)
    names = pair_feature_names()
    assert X.shape == (60, len(names)) == (60, 93)
    col = {n: i for i, n in enumerate(names)}
    v1, v2 = block_view(a1, 16), block_view(a2, 16)
    np.testing.assert_array_equal(X[:, col["dmean_b04"]], v2.mean(2)[:, 3] - v1.mean(2)[:, 3])
    np.testing.assert_array_equal(X[:, col["absdiff_b04"]],
                                  block_view(np.abs(a2 - a1), 16).mean(2)[:, 3])
    np.testing.assert_allclose(X[:, col["dmean_ndvi"]],
                               X[:, col["mean_ndvi2"]] - X[:, col["mean_ndvi1"]])
    assert label_share(np.eye(32, dtype=bool), 16).tolist() == [1 / 16, 0, 0, 1 / 16]
