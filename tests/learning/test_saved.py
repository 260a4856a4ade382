"""Saved classifiers (eominer.learning.saved) on the real OSCD store: the row, the file,
and a loaded model that scores the session's patches as the session does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eominer.errors import ConfigError
from eominer.learning.saved import load_model
from eominer.learning.session import Session
from tests.cli.process import in_process
from tests.conftest import positives
from tests.learning.sessions import _trained, answered


def raw_features(store, s):
    ids, X, _ = store.read_features(s.feature_set_ids, s.product_ids, s.level)
    keep = np.isin(ids, s.patch_ids)
    assert np.array_equal(ids[keep], s.patch_ids)
    return X[keep]


@pytest.mark.parametrize("kind", ["logistic", "linear_svm", "rbf_svm", "random_forest",
                                  "qbe_mean", "qbe_knn"])
def test_a_loaded_model_scores_as_the_session(learn_store, oscd_db, kind):
    s = _trained(learn_store, oscd_db, model_kind=kind)
    mid = s.save_model()
    assert mid == s.model_version()
    m = load_model(learn_store, mid)
    scores = m.score(raw_features(learn_store, s))  # the model's: the session's ranking
    assert np.abs(answered(s, scores) - s.current_scores()).max() < 1e-6  # adds the answers
    # another process, later: a reopened session, the same model from the store
    again = Session.open(learn_store, s.session_id)
    assert np.abs(answered(again, load_model(learn_store, mid).score(
        raw_features(learn_store, again))) - again.current_scores()).max() < 1e-6
    assert s.save_model() == mid and len(learn_store.models("classifier")) == 1  # idempotent


def test_the_row_holds_what_the_model_came_from(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    truth = oscd_db["truth"][16]
    pos = positives(truth)
    vids = s.verification_sample(12)
    for p in vids:
        s.label(int(p), 1 if int(p) in pos else -1, "ana", purpose="verify")
    mid = s.save_model()
    row = learn_store.model(mid)
    assert row["kind"] == "classifier" and row["path"].endswith(f"classifier-{mid}.npz")
    p, met = row["params"], row["metrics"]
    last = s.rounds()[-1]
    assert (p["session_id"], p["round"], p["model_kind"], p["level"]) == (
        s.session_id, last.round, "logistic", 16)
    assert p["feature_set_ids"] == [oscd_db["fs"]] and p["concept"] == "new_construction"
    assert p["feature_signature"] == s.record.feature_signature
    assert row["trained_on"] == [list(pair) for pair in last.labels]
    assert p["n_labels"] == len(last.labels) == p["n_positive"] + p["n_negative"]
    # precision and recall on the verification answers, at the threshold
    scores = s.current_scores()
    v = np.asarray([1 if int(i) in pos else -1 for i in vids])
    pred = scores[s.data.rows(vids)] >= 0.5
    tp, fp = int(((v == 1) & pred).sum()), int(((v == -1) & pred).sum())
    fn = int(((v == 1) & ~pred).sum())
    assert met["n_verified"] == 12 and (met["verify_tp"], met["verify_fp"]) == (tp, fp)
    assert met["precision"] == pytest.approx(tp / (tp + fp))
    assert met["recall"] == (pytest.approx(tp / (tp + fn)) if tp + fn else None)
    assert met["precision_low"] <= met["precision"] <= met["precision_high"]
    assert 0.0 < met["ap_cv"] <= 1.0 and met["cv_folds"] == min(5, p["n_positive"],
                                                                 p["n_negative"])
    assert met["n_predicted_positive"] == int((scores >= 0.5).sum())
    m = load_model(learn_store, mid)
    assert np.array_equal(m.label_ids, [i for i, _ in last.labels])


def test_publishing_saves_the_model(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db, model_kind="rbf_svm")
    version = s.publish()
    assert [m["model_id"] for m in learn_store.models("classifier")] == [version]


def test_the_model_keeps_the_threshold_it_was_published_at(learn_store, oscd_db):
    """Publishing at T makes T the session's publish threshold (kept in the store) and the
    saved model's: `eominer apply MODEL` then marks positives as the session was
    published. Publishing the same round again at another threshold updates the model's
    threshold and the metrics at it, not its id. (Before, the model said 0.5 whatever
    the session was published at.)"""
    s = _trained(learn_store, oscd_db, model_kind="rbf_svm")
    scores = s.current_scores()
    mid = s.publish(0.7)
    assert Session.open(learn_store, s.session_id).params.publish_threshold == 0.7
    m = load_model(learn_store, mid)
    assert m.threshold == m.params["threshold"] == m.metrics["threshold"] == 0.7
    assert m.metrics["n_predicted_positive"] == int((scores >= np.float32(0.7)).sum())
    ap_cv = m.metrics["ap_cv"]
    assert s.publish(0.3) == mid and len(learn_store.models("classifier")) == 1
    m = load_model(learn_store, mid)
    assert m.threshold == m.metrics["threshold"] == 0.3 and m.metrics["ap_cv"] == ap_cv
    assert m.metrics["n_predicted_positive"] == int((scores >= np.float32(0.3)).sum()) > (
        int((scores >= np.float32(0.7)).sum()))
    assert s.save_model() == mid and load_model(learn_store, mid).threshold == 0.3


def test_unknown_model_is_refused_with_the_saved_ones(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    mid = s.save_model()
    with pytest.raises(ConfigError, match=rf"model 'nope' is not in .*saved classifiers: "
                       rf"{mid}\); save one with `eominer session save-model"):
        load_model(learn_store, "nope")
    learn_store.add_model("encoder-v1", "encoder", "/m/e.keras", {}, {}, [])
    with pytest.raises(ConfigError, match="'encoder-v1' is a encoder, not a classifier"):
        load_model(learn_store, "encoder-v1")


def test_cli_save_model_and_models(learn_store, oscd_db, tmp_path, capsys):
    s = _trained(learn_store, oscd_db, model_kind="linear_svm")
    n, version, sid = len(s.rounds()[-1].labels), s.model_version(), s.session_id
    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    r = run(["session", "save-model", sid, "--db", db], tmp_path)
    assert r.returncode == 0, r.stderr
    mid = r.stdout.strip()
    assert mid == version and "saved linear_svm classifier" in r.stderr
    r = run(["models", "--db", db, "--format", "json"], tmp_path)
    (row,) = json.loads(r.stdout)
    assert {k: row[k] for k in ("model_id", "kind", "model", "concept", "feature_sets",
                                "session")} == {
        "model_id": mid, "kind": "classifier", "model": "linear_svm",
        "concept": "new_construction", "feature_sets": oscd_db["fs"],
        "session": sid}
    assert row["labels"].startswith(f"{n} (")
    assert row["ap_cv"] is None or row["ap_cv"] == round(row["ap_cv"], 3)
    assert row["threshold"] == 0.5  # never published: the session's default
    r = run(["models", "--db", db], tmp_path)
    assert r.returncode == 0 and mid in r.stdout and "linear_svm" in r.stdout
    created = row["created"][:19]  # the table's time is to the second
    assert f" {created} " in r.stdout and f"{created}." not in r.stdout, r.stdout
    r = run(["session", "save-model", "nosuch", "--db", db], tmp_path)
    assert r.returncode == 1 and "no session 'nosuch'" in r.stderr
