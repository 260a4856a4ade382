"""A feature column as the session's prior (eominer.learning.prior) on the real OSCD
store: the mix by hand from the raw column, its fading, a resumed session, a saved model,
and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.prior import Prior, find_column, mix
from eominer.learning.saved import load_model
from eominer.learning.session import Session
from tests.learning.sessions import _answer, _create, _seed_labels, answered, create_args
from tests.learning.test_saved import raw_features

COLUMN = "absdiff_b04"  # |red(date 2) - red(date 1)| per patch


def by_hand(plain: np.ndarray, raw: np.ndarray, weight: float) -> np.ndarray:
    """sigmoid(logit(s) + weight z) in float64, z the column's z-score over the patches."""
    z = (raw - raw.mean()) / raw.std()
    s = np.clip(plain.astype(np.float64), 1e-6, 1 - 1e-6)
    return 1 / (1 + np.exp(-(np.log(s / (1 - s)) + weight * z)))


def test_the_ranking_is_the_models_mixed_with_the_column_and_fades(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    plain = _create(learn_store, oscd_db, model_kind="rbf_svm")
    prior = _create(learn_store, oscd_db, model_kind="rbf_svm",
                    params={"prior": COLUMN, "prior_weight": 3.0, "prior_half": 10.0})
    for s in (plain, prior):
        _seed_labels(s, truth)  # 5 labels
    col = plain.data.names.index(f"{oscd_db['fs']}__{COLUMN}")
    raw = raw_features(learn_store, plain)[:, col].astype(np.float64)
    r0, r1 = plain.run_round(), prior.run_round()
    np.testing.assert_allclose(r1.scores, answered(prior, by_hand(r0.scores, raw, 3.0 * 10 / 15)),
                               atol=2e-6)
    assert np.abs(r1.scores - r0.scores).max() > 0.1
    # the next round, resumed in another process: 25 labels
    _answer(prior, r1.query_ids, truth)
    r2 = prior.run_round()
    assert r2.n_labels == 25
    again = Session.open(learn_store, prior.session_id)
    assert again.params.prior == COLUMN and again.params.prior_half == 10.0
    np.testing.assert_array_equal(again.current_scores(), r2.scores)
    # the same labels without the prior: r2's scores are its scores mixed at weight 3 x 10/35
    ids, y2 = prior.round_labels(prior.rounds()[-1])
    bare = _create(learn_store, oscd_db, model_kind="rbf_svm")
    for p, v in zip(ids.tolist(), y2.tolist()):
        bare.label(p, v, "ana")
    np.testing.assert_allclose(r2.scores, answered(prior, by_hand(
        bare.run_round().scores, raw, 3.0 * 10 / 35)), atol=2e-6)


def test_a_saved_model_scores_with_the_prior_at_its_round(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db, model_kind="logistic", params={"prior": COLUMN})
    _seed_labels(s, truth)
    s.run_round()
    m = load_model(learn_store, s.save_model())
    assert m.params["prior"]["column"] == f"{oscd_db['fs']}__{COLUMN}"
    assert m.params["prior"]["weight"] == pytest.approx(4.0 * 20 / 25)  # the defaults
    scores = m.score(raw_features(learn_store, s))
    assert np.abs(answered(s, scores) - s.current_scores()).max() < 1e-6
    assert np.abs(m.scorer.estimator.score(s.data.rows_f32(np.arange(len(scores))))
                  - scores).max() > 0.05  # the model's own scores differ


def test_a_fixed_prior_and_the_mix_by_hand():
    s = np.array([0.5, 0.5, 0.2, 1.0], np.float32)
    z = np.array([0.0, 1.0, -1.0, 0.0], np.float32)
    got = mix(s.copy(), z, 2.0)
    want = [0.5, 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-(np.log(0.25) - 2.0))),
            1 - 1e-6]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_array_equal(mix(s.copy(), z, 0.0), s)


def test_the_weight_fades_by_half_and_never_with_a_half_of_0_or_infinity():
    """`--prior-half inf` was taken and gave NaN weights once labels came: rounds that
    asked nothing."""
    fading = Prior("c", 0, 0.0, 1.0, 4.0, 20.0)
    assert [fading.weight_at(n) for n in (0, 20, 60)] == [4.0, 2.0, 1.0]
    for half in (0.0, float("inf")):
        assert Prior("c", 0, 0.0, 1.0, 4.0, half).weight_at(40) == 4.0


def test_a_column_that_is_not_there_or_is_ambiguous_is_refused(learn_store, oscd_db):
    names = ["a__ndvi_mean", "b__ndvi_mean", "b__ndwi_mean"]
    assert find_column(names, "ndwi_mean") == 2 and find_column(names, "b__ndvi_mean") == 1
    with pytest.raises(SessionError, match=r"in several feature sets.*'a__ndvi_mean'"):
        find_column(names, "ndvi_mean")
    before = len(learn_store.session_list())
    with pytest.raises(SessionError, match=r"'change_prob_mean' is not among the session's "
                                           r"features; its columns are \['absdiff_b01'"):
        _create(learn_store, oscd_db, params={"prior": "change_prob_mean"})
    with pytest.raises(SessionError, match="prior_weight must be a finite number"):
        _create(learn_store, oscd_db, params={"prior": COLUMN, "prior_weight": float("nan")})
    assert len(learn_store.session_list()) == before  # nothing written


def test_a_column_of_a_set_left_out_says_which_set_has_it_and_for_which_products(
        learn_store, oscd_db):
    """A change set has rows on its pair's first date only: a scope of both dates leaves
    it out of the default sets, and the refusal says where the column is."""
    p1, p2 = oscd_db["product"], oscd_db["product2"]
    ids = {p: learn_store.patches(p, 16)["patch_id"].to_numpy() for p in (p1, p2)}
    change = learn_store.register_feature_set("change_x", 1, {"first": p1, "second": p2},
                                              ["change_prob_mean"], "S2")
    learn_store.write_features(change, ids[p1], np.ones((len(ids[p1]), 1), np.float32))
    both = learn_store.register_feature_set("both_dates", 1, {}, ["b04_mean"], "S2")
    every = np.concatenate([ids[p1], ids[p2]])
    learn_store.write_features(both, every, np.arange(len(every), dtype=np.float32)[:, None])
    before = len(learn_store.session_list())
    with pytest.raises(SessionError, match=(
            rf"'change_prob_mean' is not among the session's features; its columns are "
            rf"\['b04_mean'\]\. Feature set {change.feature_set_id} \(change_x\) has it for 1 "
            rf"of the scope's 2 products at level 16 \({p1}\): give those with --product")):
        Session.create(learn_store, "sites", "ana", "new_construction", [p1, p2], 16,
                       [both.feature_set_id], params={"prior": "change_prob_mean"})
    with pytest.raises(SessionError, match=(
            rf"Feature set {change.feature_set_id} \(change_x\) has it for every product "
            rf"of the scope: add it to --features")):
        _create(learn_store, oscd_db, params={"prior": "change_prob_mean"})
    assert len(learn_store.session_list()) == before  # nothing written
    s = Session.create(learn_store, "sites", "ana", "new_construction", [p1], 16,
                       [oscd_db["fs"], change.feature_set_id],
                       params={"prior": "change_prob_mean"})
    assert s.settings()["prior"] == {"column": "change_prob_mean", "weight": 4.0,
                                     "half_labels": 20.0}


def test_cli_prior(learn_store, oscd_db, tmp_path, capsys):
    from eominer.store import open_store
    from tests.cli.process import in_process

    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    base = create_args(db, oscd_db)
    r = run([*base, "--prior", COLUMN, "--prior-half", "0"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    with open_store(db) as store:
        p = Session.open(store, r.stdout.strip()).params
        assert (p.prior, p.prior_weight, p.prior_half) == (COLUMN, 4.0, 0.0)
    r = run([*base, "--prior", "nope"], tmp_path / "ws")
    assert r.returncode != 0 and "prior column 'nope' is not among the session's features" \
        in r.stderr


def test_before_any_positive_the_prior_chooses_the_questions(learn_store, oscd_db):
    """The first batch is the column's top (bottom with a negative weight); a round with
    only negatives asks about the next ones."""
    up = _create(learn_store, oscd_db, params={"prior": COLUMN, "batch_size": 6})
    down = _create(learn_store, oscd_db, params={"prior": COLUMN, "prior_weight": -1.0})
    col = up.data.names.index(f"{oscd_db['fs']}__{COLUMN}")
    raw = raw_features(learn_store, up)[:, col]
    order = up.patch_ids[np.argsort(-raw, kind="stable")]
    assert up.cold_start().tolist() == order[:6].tolist()
    assert down.cold_start(4).tolist() == up.patch_ids[np.argsort(raw, kind="stable")][
        :4].tolist()
    for p in order[:6].tolist():
        up.label(p, -1, "ana")
    r = up.run_round()
    assert r.scores is None and r.query_ids.tolist() == order[6:12].tolist()
    assert f"the patches {COLUMN} ranks first" in r.notes[0]
    # what the map shows meanwhile: the column alone, at the weight of 6 labels
    np.testing.assert_allclose(up.prior_ranking(), answered(up, by_hand(
        np.full(len(raw), 0.5), raw, 4.0 * 20 / 26), up.labels()), atol=2e-6)
    assert (up.prior_ranking()[up.data.rows(order[:6])] == 0).all()  # the six "no"
    np.testing.assert_allclose(down.prior_ranking(), by_hand(np.full(len(raw), 0.5), raw,
                                                             -1.0), atol=2e-6)
    assert _create(learn_store, oscd_db).prior_ranking() is None


def test_the_prior_ranking_goes_through_the_spatial_context(learn_store, oscd_db):
    from eominer.learning.context import load_grid, smooth

    s = _create(learn_store, oscd_db, params={"prior": COLUMN, "spatial_context": 0.3})
    col = s.data.names.index(f"{oscd_db['fs']}__{COLUMN}")
    raw = raw_features(learn_store, s)[:, col]
    alone = by_hand(np.full(len(raw), 0.5), raw, 4.0).astype(np.float32)
    grid = load_grid(learn_store, s.product_ids, s.level, s.data.patch_ids)
    np.testing.assert_allclose(s.prior_ranking(), smooth(alone, grid, 0.3), atol=2e-6)
    assert np.abs(s.prior_ranking() - alone).max() > 0.05  # the neighbours moved it


def test_an_int8_session_mixes_the_same_prior(learn_store, oscd_db):
    """A compact session (int8 codes) reads the prior column from its codes: the same
    z-scores to the quantisation step, and the first batch of the float32 session."""
    f32 = _create(learn_store, oscd_db, params={"prior": COLUMN}, features_dtype="float32")
    i8 = _create(learn_store, oscd_db, params={"prior": COLUMN}, features_dtype="int8")
    assert i8.data.dtype == "int8"
    z32, z8 = f32.prior()[1], i8.prior()[1]
    assert np.abs(z8 - z32).max() < 0.05 and np.corrcoef(z8, z32)[0, 1] > 0.999, np.abs(z8 - z32).max()
    assert len(set(i8.cold_start().tolist()) & set(f32.cold_start().tolist())) >= 18


def test_under_a_saturated_prior_most_relevant_asks_by_the_column(learn_store, oscd_db):
    """A prior of weight 60 that never fades saturates the float32 scores of the top at
    1.0: `most_relevant` then asks about the highest column values first, not the first
    rows."""
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db, strategy="most_relevant",
                params={"prior": COLUMN, "prior_weight": 60.0, "prior_half": 0.0})
    _seed_labels(s, truth)
    r = s.run_round()
    ids, _ = s.labels()
    open_rows = np.setdiff1d(np.arange(s.data.n), s.data.rows(ids))
    tied = open_rows[r.scores[open_rows] == 1.0]
    assert len(tied) > len(r.query_ids)  # saturated: more ties than questions
    col = s.data.names.index(f"{oscd_db['fs']}__{COLUMN}")
    raw = raw_features(learn_store, s)[:, col]
    want = tied[np.lexsort((tied, -raw[tied]))][:len(r.query_ids)]
    assert s.data.rows(r.query_ids).tolist() == want.tolist()
