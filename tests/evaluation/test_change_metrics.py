"""Scores of a change map against reference labels."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation.change_metrics import auprc, confusion, from_confusion, score_maps


def test_metrics_from_confusion_by_hand() -> None:
    s = from_confusion(tp=40, fp=10, fn=20, tn=930, auprc=0.5)
    assert s.precision == pytest.approx(0.8)
    assert s.recall == pytest.approx(40 / 60)
    assert s.f1 == pytest.approx(2 * 40 / (80 + 30))
    po = 970 / 1000
    pe = (50 * 60 + 950 * 940) / 1000**2
    assert s.kappa == pytest.approx((po - pe) / (1 - pe))


def test_score_maps_counts_nodata_as_no_change() -> None:
    truth = np.array([[1, 1, 0, 0]], bool)
    prob = np.array([[0.9, np.nan, 0.2, 0.1]], np.float32)
    binary = np.array([[1, 255, 0, 0]], np.uint8)
    assert confusion(binary == 1, truth) == (1, 0, 1, 2)
    s = score_maps(prob, binary, truth)
    assert (s.tp, s.fp, s.fn, s.tn, s.n) == (1, 0, 1, 2, 4)
    assert s.auprc == pytest.approx(auprc(np.array([0.9, 0.0, 0.2, 0.1]), truth))
    assert np.isnan(auprc(prob, np.zeros_like(truth)))  # no change at all: undefined
