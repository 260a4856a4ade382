"""eominer.learning.engine on real OSCD features."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.engine import fit_score_pick


def test_non_finite_features_are_counted(learn_store, oscd_db):
    from eominer.learning.engine import SessionData

    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    X[1, 2] = np.nan
    d = SessionData(np.arange(4), X)
    assert d.n_nonfinite == 1 and np.isfinite(d.X).all() and d.X[1, 2] == 0.0
    np.testing.assert_allclose(d.X[:, 0].mean(), 0.0, atol=1e-6)


def test_fit_score_pick_one_call(bordeaux):
    data, y, rows = bordeaux
    model, scores, pick, notes = fit_score_pick(data, rows, y[rows], model_kind="linear_svm",
                                                strategy="diverse", n=7)
    assert len(pick) == 7 and notes == [] and model.kind == "linear_svm"
    with pytest.raises(SessionError, match="no positive label yet"):
        fit_score_pick(data, rows[y[rows] == -1], y[rows][y[rows] == -1])
