"""Ranking scores by hand."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation.ranking import average_precision, f1_at_half


def test_average_precision_and_f1_by_hand() -> None:
    y = np.array([1, -1, 1, -1], np.int8)
    s = np.array([0.9, 0.8, 0.6, 0.1], np.float32)
    assert average_precision(y, s) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert f1_at_half(y, s) == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))  # tp 2, fp 1, fn 0
    assert f1_at_half(y, np.zeros(4)) == 0.0
