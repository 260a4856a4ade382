"""Label-stratified folds and per-fold multi-label scores, on the BigEarthNet labels."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.evaluation import bigearthnet
from eominer.evaluation.crossval import fold_metrics, iterative_folds
from eominer.fusion.labels import Vocabulary


@pytest.fixture(scope="module")
def Y(ben):
    d = bigearthnet.load(ben)
    return Vocabulary.present(d.labels).encode(d.labels)


def test_iterative_folds_spread_rare_labels(Y):
    folds = iterative_folds(Y, 3, seed=1)
    assert sorted(np.bincount(folds)) == [9, 9, 9]
    per_fold = np.stack([Y[folds == f].sum(axis=0) for f in range(3)])
    common = Y.sum(axis=0) >= 3
    assert (per_fold[:, common] >= 1).all()  # every label with >= 3 positives in every fold
    assert not np.array_equal(folds, iterative_folds(Y, 3, seed=2))


def test_fold_metrics_values():
    Y = np.array([[1, 0], [0, 1], [1, 1]])
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = fold_metrics(Y, P)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))  # tp 3, fn 1, fp 0
    assert m["mAP"] == pytest.approx(1.0)
