"""The simulated analyst's schedule and the table's arithmetic (the sessions themselves
run in tests/cli/test_eval_learning.py)."""

from __future__ import annotations

import numpy as np

from eominer.evaluation.mining import Row, _labels_to_random, markdown, schedule


def test_schedule_lands_on_every_checkpoint():
    s = schedule(4, 10, 200, (25, 50, 100, 200))
    assert s[:5] == [4, 14, 24, 25, 35] and s[-1] == 200
    assert {25, 50, 100, 200} <= set(s) and all(b - a <= 10 for a, b in zip(s, s[1:]))
    assert schedule(4, 10, 30, (25, 50)) == [4, 14, 24, 25, 30]


def test_labels_to_random_and_the_table():
    def row(strategy, curves):
        return Row("t", "spectral", ["fs"], strategy, "rbf_svm", [25, 50], [0.2, 0.4],
                   [0.0, 0.1], 0.9, 2, curves=curves)

    rnd = row("random", [{"labels": [4, 25, 50], "ap": [0.1, 0.2, 0.3]},
                         {"labels": [4, 25, 50], "ap": [0.1, 0.2, 0.5]}])
    act = row("margin", [{"labels": [4, 25, 50], "ap": [0.1, 0.45, 0.6]},
                         {"labels": [4, 25, 50], "ap": [0.1, 0.3, 0.3]}])
    _labels_to_random([rnd, act])
    assert rnd.random_final == act.random_final == 0.4
    assert (act.labels_to_random, act.reached) == (25.0, 1)
    assert (rnd.labels_to_random, rnd.reached) == (50.0, 1)
    lines = markdown([rnd, act]).splitlines()
    assert lines[0] == ("| task | features | strategy | AP@25 | AP@50 | labels to random's "
                        "AP@50 | all labels |")
    assert lines[3] == "| t | spectral | margin | 0.200±0.000 | 0.400±0.100 | 25 (1/2) | 0.900 |"


def test_labels_to_random_counts_an_equal_ap_as_reached():
    # three seeds ending on the same AP: their mean is one ulp above it in float64
    assert np.mean([0.1] * 3) > 0.1
    curves = [{"labels": [4, 14, 24], "ap": [0.05, 0.08, 0.1]} for _ in range(3)]
    rnd = Row("t", "spectral", ["fs"], "random", "rbf_svm", [24], [float(np.mean([0.1] * 3))],
              [0.0], 0.1, 3, curves=curves)  # the mean as `evaluate` computes it
    _labels_to_random([rnd])
    assert (rnd.labels_to_random, rnd.reached) == (24.0, 3)


def test_out_of_fold_scores_never_see_their_own_labels():
    """Labels that are noise: a model scoring the rows it was fitted on ranks them well
    (the in-sample ceiling), out-of-fold scores rank them at chance."""
    from eominer.evaluation.mining import out_of_fold_scores
    from eominer.evaluation.ranking import average_precision
    from eominer.learning.models import make_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30)).astype(np.float32)
    y = np.where(rng.random(400) < 0.2, 1, -1)
    inside = make_model("rbf_svm").fit(X, y).score(X)
    oof = out_of_fold_scores(X, y, "rbf_svm")
    base = (y == 1).mean()
    assert average_precision(y, inside) > 0.9
    assert abs(average_precision(y, oof) - base) < 0.1


def test_out_of_fold_scores_by_group_hold_each_group_out():
    from eominer.evaluation.mining import out_of_fold_scores
    from eominer.learning.models import make_model

    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 4)).astype(np.float32)
    y = np.where(X[:, 0] > 0, 1, -1)
    y[:30], y[60:] = 1, -1  # group a all positive, b mixed, c all negative
    groups = np.repeat(np.array(["a", "b", "c"], object), 30)
    out = out_of_fold_scores(X, y, "logistic", groups)
    for g in ("a", "b", "c"):  # each group scored by the model of the two others
        held = groups == g
        want = make_model("logistic").fit(X[~held], y[~held]).score(X[held])
        np.testing.assert_array_equal(out[held], want)
    # a and b alone: holding one out leaves one class, nothing to learn: 0.5
    one = out_of_fold_scores(X[:60], np.r_[np.ones(30), -np.ones(30)], "logistic",
                             groups[:60])
    assert (one == 0.5).all()


def test_rows_with_spatial_context_are_marked_and_share_the_random_row():
    from eominer.evaluation.mining import as_json

    def row(strategy, context, final):
        return Row("t", "spectral", ["fs"], strategy, "rbf_svm", [25], [final], [0.0], 0.9, 1,
                   spatial_context=context,
                   curves=[{"labels": [4, 25], "ap": [0.1, final]}])

    rows = [row("random", 0.0, 0.3), row("random", 0.3, 0.5), row("diverse", 0.3, 0.4)]
    _labels_to_random(rows)
    assert [r.random_final for r in rows] == [0.3, 0.3, 0.3]  # random without context
    cells = [line.split(" | ")[2] for line in markdown(rows).splitlines()[2:]]
    assert cells == ["random", "random, context 0.3", "diverse, context 0.3"]
    assert [x["spatial_context"] for x in as_json(rows)] == [0.0, 0.3, 0.3]
    rows[2].prior = "change_prob_mean"
    assert markdown(rows).splitlines()[4].split(" | ")[2] == (
        "diverse, context 0.3, prior change_prob_mean")
    assert [x["prior"] for x in as_json(rows)] == [None, None, "change_prob_mean"]
    # the spread on the map (eval learning --spatial-weight) is named where it acts
    for r in rows:
        r.spatial_weight, r.prior = 1.0, None
    cells = [line.split(" | ")[2] for line in markdown(rows).splitlines()[2:]]
    assert cells == ["random", "random, context 0.3", "diverse, spread 1, context 0.3"]
    assert [x["spatial_weight"] for x in as_json(rows)] == [1.0, 1.0, 1.0]


def test_simulated_sessions_carry_the_spatial_context(learn_store, oscd_db):
    from eominer.evaluation.mining import simulate
    from eominer.evaluation.tasks import Task
    from tests.conftest import positives

    truth = oscd_db["truth"][16]
    ids = np.asarray(sorted(truth), np.int64)
    pos = positives(truth)
    y = np.asarray([1 if int(i) in pos else -1 for i in ids], np.int8)
    task = Task("bordeaux", "new_construction", (oscd_db["product"],), ids, y, 16)
    runs = {a: simulate(learn_store, task, [oscd_db["fs"]], strategy="margin", model="rbf_svm",
                        seed=0, budget=25, batch=10, spatial_context=a) for a in (0.0, 0.3)}
    for a, r in runs.items():
        assert learn_store.session(r.session_id).params.spatial_context == a
        assert r.labels == [4, 14, 24, 25]
    assert runs[0.0].ap[0] != runs[0.3].ap[0]  # the same 4 labels, another ranking
    # and the prior (eval learning --prior): the same 4 labels, another ranking again
    p = simulate(learn_store, task, [oscd_db["fs"]], strategy="margin", model="rbf_svm",
                 seed=0, budget=25, batch=10, prior="absdiff_b04")
    assert learn_store.session(p.session_id).params.prior == "absdiff_b04"
    assert p.ap[0] != runs[0.0].ap[0]
    # and the spread (eval learning --spatial-weight): diverse asks about other patches
    d = {w: simulate(learn_store, task, [oscd_db["fs"]], strategy="diverse", model="rbf_svm",
                     seed=0, budget=25, batch=10, spatial_weight=w) for w in (0.0, 1.0)}
    assert learn_store.session(d[1.0].session_id).params.spatial_weight == 1.0
    asked = {w: {int(i) for i in learn_store.session_labels(r.session_id)
                 .column("patch_id").to_pylist()} for w, r in d.items()}
    assert asked[0.0] != asked[1.0]


def test_heldout_ap_scores_only_the_patches_not_labelled_yet(learn_store, oscd_db):
    """`drive(heldout=...)`: each round's AP over the patches unlabelled at that round,
    recomputed here from the round's scores and the session's stored labels."""
    from eominer.evaluation.mining import drive
    from eominer.evaluation.ranking import average_precision
    from eominer.learning.session import Session
    from tests.conftest import positives

    truth = oscd_db["truth"][16]
    pos = positives(truth)
    s = Session.create(learn_store, "heldout", "eval", "new_construction",
                       [oscd_db["product"]], 16, [oscd_db["fs"]], model_kind="rbf_svm",
                       strategy="margin", params={"seed": 0, "batch_size": 10})
    y = np.asarray([1 if int(i) in pos else -1 for i in s.patch_ids], np.int8)
    scores: list[np.ndarray] = []
    heldout: list[float] = []

    def ap_of(sc: np.ndarray) -> float:
        scores.append(sc.copy())
        return average_precision(y, sc)

    labels, aps = drive(s, y, 0, 34, 10, (25,), ap_of, "bordeaux", heldout)
    assert labels == [4, 14, 24, 25, 34] and len(heldout) == len(scores) == 5
    t = learn_store.session_labels(s.session_id).to_pandas()
    rounds = sorted(t["round"].unique())
    assert len(rounds) == 5  # the first four, then one batch per round but the last
    for k, sc in enumerate(scores):
        known = np.isin(s.patch_ids, t.loc[t["round"] <= rounds[k], "patch_id"].to_numpy())
        assert known.sum() == labels[k]
        assert heldout[k] == average_precision(y[~known], sc[~known])
    # the labelled positives, scored in-sample, lift the AP over every patch
    assert aps[-1] > heldout[-1]
    s.close()
