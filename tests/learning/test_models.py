"""Every model on real OSCD features (Bordeaux, 16 px patches)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.evaluation.ranking import average_precision
from eominer.learning.models import MODEL_KINDS, make_model, similar_to


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_model_ranks_real_change(bordeaux, kind):
    data, y, rows = bordeaux
    model = make_model(kind).fit(data.X[rows], y[rows])
    scores = model.score(data.X, data.sq_norms)
    assert scores.dtype == np.float32 and scores.shape == (data.n,)
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0
    base = float((y == 1).mean())
    assert average_precision(y, scores) > 2.5 * base, kind
    assert np.mean(scores[rows][y[rows] == 1]) > np.mean(scores[rows][y[rows] == -1])


def test_own_scoring_matches_scikit_learn(bordeaux):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    data, y, rows = bordeaux
    lin = make_model("logistic").fit(data.X[rows], y[rows])
    ref = LogisticRegression(class_weight="balanced", solver="liblinear").fit(
        data.X[rows], y[rows])
    np.testing.assert_allclose(lin.decision(data.X), ref.decision_function(data.X),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lin.score(data.X), ref.predict_proba(data.X)[:, 1], atol=1e-5)
    rbf = make_model("rbf_svm").fit(data.X[rows], y[rows])
    ref = SVC(kernel="rbf", gamma=float(rbf.gamma_), class_weight="balanced").fit(
        data.X[rows], y[rows])
    np.testing.assert_allclose(rbf.decision(data.X, data.sq_norms),
                               ref.decision_function(data.X), atol=2e-4)


def test_models_refuse_one_class(bordeaux):
    data, y, rows = bordeaux
    with pytest.raises(SessionError, match="at least one positive and one negative"):
        make_model("rbf_svm").fit(data.X[rows[:5]], y[rows[:5]])
    with pytest.raises(SessionError, match="unknown model kind 'svm'"):
        make_model("svm")
    with pytest.raises(SessionError, match="needs at least one positive"):
        make_model("qbe_mean").fit(data.X[rows[-3:]], y[rows[-3:]])


def test_query_by_example_from_positives_only(bordeaux):
    data, y, rows = bordeaux
    pos = rows[y[rows] == 1][:3]
    for kind in ("qbe_mean", "qbe_knn"):
        s = make_model(kind).fit(data.X[pos], np.ones(3, np.int8)).score(data.X, data.sq_norms)
        assert average_precision(y, s) > 2 * float((y == 1).mean()), kind
    idx, sims = similar_to(data.X, data.X[pos[0]], 5, data.sq_norms)
    assert idx[0] == pos[0] and np.all(np.diff(sims) <= 0)
    d = ((data.X - data.X[pos[0]]) ** 2).sum(1)
    assert set(idx.tolist()) == set(np.argsort(d)[:5].tolist())


def test_rbf_scoring_is_exact_for_outlier_rows(bordeaux):
    from sklearn.svm import SVC

    data, y, rows = bordeaux
    rbf = make_model("rbf_svm").fit(data.X[rows], y[rows])
    far = data.X[:50] * np.float32(40.0)  # g |x|^2 far above the exp range
    ref = SVC(kernel="rbf", gamma=float(rbf.gamma_), class_weight="balanced").fit(
        data.X[rows], y[rows])
    got = rbf.decision(far)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref.decision_function(far), atol=2e-4)


def test_a_round_imports_its_library_before_its_clock_starts():
    """scikit-learn loads on a model's first fit: `import_backend`, which a round calls
    before it reads the clock, loads it for every kind that fits with it (a fresh
    process: this one has it already)."""
    import subprocess
    import sys

    code = ("import sys; from eominer.learning.models import MODEL_KINDS, _BACKENDS, "
            "import_backend; before = 'sklearn.svm' in sys.modules; "
            "[import_backend(k) for k in MODEL_KINDS]; "
            "print(before, all(m in sys.modules for ms in _BACKENDS.values() for m in ms))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True"]


def test_auto_is_the_rbf_svm_up_to_a_million_patches_and_is_stored_resolved(learn_store,
                                                                           oscd_db):
    from eominer.learning.models import RBF_AUTO_MAX_PATCHES, resolve_model
    from tests.learning.sessions import _create

    assert resolve_model("auto", RBF_AUTO_MAX_PATCHES) == "rbf_svm"
    assert resolve_model("auto", RBF_AUTO_MAX_PATCHES + 1) == "logistic"
    assert resolve_model("random_forest", 10**8) == "random_forest"
    with pytest.raises(SessionError, match="expected auto or one of logistic"):
        resolve_model("svm", 10)
    s = _create(learn_store, oscd_db)  # the default
    assert s.record.model_kind == "rbf_svm"
    from eominer.learning.session import Session

    assert Session.open(learn_store, s.session_id).record.model_kind == "rbf_svm"
    # a round asked for with `auto` (`session round --model auto`) resolves it too
    from tests.learning.sessions import _seed_labels

    _seed_labels(s, oscd_db["truth"][16])
    assert s.run_round(model_kind="auto").model_kind == "rbf_svm"
