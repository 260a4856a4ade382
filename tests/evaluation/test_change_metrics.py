"""Scores of a change map against reference labels."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation.change_metrics import (
    F1Hull,
    auprc,
    best_f1,
    confusion,
    from_confusion,
    score_maps,
)


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_auprc_equals_scikit_learn_with_ties(dtype: type) -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(5)
    truth = rng.random(3000) < 0.07
    prob = np.where(truth, rng.beta(3, 2, 3000), rng.beta(2, 3, 3000))
    prob = (np.round(prob * 50) if dtype == np.uint8 else np.round(prob, 2)).astype(dtype)
    truth[np.flatnonzero(prob == prob.min())[:3]] = True  # changed pixels at the lowest level
    assert auprc(prob, truth) == pytest.approx(average_precision_score(truth, prob), abs=1e-12)
    assert 0.07 < auprc(prob, truth) < 1
    levels = [*np.unique(prob), np.inf]  # and the F1 hull with a changed pixel at the bottom
    by_hand = max(n / d for n, d in (_f1_at(prob, truth, v) for v in levels))
    assert best_f1([F1Hull.of(prob, truth)])[0] == pytest.approx(by_hand)


def _f1_at(prob: np.ndarray, truth: np.ndarray, level: float) -> tuple[int, int, int]:
    """2 TP, flagged + positives: the F1's numerator and denominator at one threshold."""
    pred = prob >= level
    return 2 * int((pred & truth).sum()), int(pred.sum() + truth.sum())


def test_best_f1_of_one_map_is_its_best_threshold() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(400) < 0.1
    prob = np.round(np.where(truth, rng.beta(3, 2, 400), rng.beta(2, 3, 400)), 2)  # ties
    prob[:5] = np.nan  # nodata: probability 0, as for the other scores
    p0 = np.nan_to_num(prob, nan=0.0)
    levels = [*np.unique(p0), np.inf]
    by_hand = max(n / d for n, d in (_f1_at(p0, truth, v) for v in levels))
    f, (level,) = best_f1([F1Hull.of(prob, truth)])
    assert f == pytest.approx(by_hand)
    n, d = _f1_at(p0, truth, level)
    assert n / d == pytest.approx(by_hand)  # the threshold it names gives that F1
    s = score_maps(prob, (p0 >= 0.5).astype(np.uint8), truth)
    assert s.f1 <= s.f1_bound == pytest.approx(by_hand)


def test_pooled_best_f1_searches_one_threshold_per_map_jointly() -> None:
    """Three small maps, every combination of thresholds tried: the pooled optimum can
    flag nothing in a map whose own best F1 is low (here the noisy third one)."""
    rng = np.random.default_rng(7)
    maps = []
    for share, sep in ((0.3, 2.0), (0.2, 1.0), (0.05, 0.2)):
        truth = rng.random(12) < share
        truth[0] = True
        maps.append((rng.normal(sep * truth, 1.0), truth))
    options = [[_f1_at(p, t, v) for v in (*np.unique(p), np.inf)] for p, t in maps]
    by_hand = max(
        (a[0] + b[0] + c[0]) / (a[1] + b[1] + c[1])
        for a in options[0] for b in options[1] for c in options[2]
    )
    f, levels = best_f1([F1Hull.of(p, t) for p, t in maps])
    assert f == pytest.approx(by_hand)
    got = [_f1_at(p, t, v) for (p, t), v in zip(maps, levels, strict=True)]
    assert sum(n for n, _ in got) / sum(d for _, d in got) == pytest.approx(by_hand)
    # each map's own best threshold, pooled, does worse: the third map's own best flags its
    # one change among false alarms, and pooled, flagging nothing there is better
    own = [best_f1([F1Hull.of(p, t)])[1][0] for p, t in maps]
    mine = [_f1_at(p, t, v) for (p, t), v in zip(maps, own, strict=True)]
    assert f > sum(n for n, _ in mine) / sum(d for _, d in mine) + 0.01
    assert levels[2] == np.inf and own[2] < np.inf


def test_best_f1_with_no_change_anywhere_is_undefined() -> None:
    f, levels = best_f1([F1Hull.of(np.array([0.2, 0.9]), np.zeros(2, bool))])
    assert np.isnan(f) and levels == [np.inf]
