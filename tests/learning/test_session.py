"""Sessions on a real store (OSCD Bordeaux): labels, rounds, resume, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.session import Session
from tests.conftest import positives
from tests.learning.sessions import _answer, _create, _seed_labels, _trained


def test_rounds_improve_ranking_and_are_recorded(learn_store, oscd_db):
    from eominer.evaluation.ranking import average_precision

    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db)
    assert s.data.n == len(truth) == 896
    first = s.run_round()  # no labels: a diverse cold-start batch, no scores
    assert first.scores is None and len(first.query_ids) == 20
    assert any("no positive label" in n for n in first.notes)
    _seed_labels(s, truth)
    y = np.asarray([1 if truth[int(p)] > 0.05 else -1 for p in s.patch_ids])
    aps = []
    for _ in range(4):
        r = s.run_round()
        assert r.scores.dtype == np.float32 and r.scores.shape == (896,)
        assert float(r.scores.min()) >= 0.0 and float(r.scores.max()) <= 1.0
        labelled, _ = s.labels()
        assert not set(r.query_ids.tolist()) & set(labelled.tolist())
        aps.append(average_precision(y, r.scores))
        _answer(s, r.query_ids, truth)
    # 65 labels: the ranking is far better than chance (AP of a random ranking = base rate)
    base = float((y == 1).mean())
    assert base < 0.06 and aps[-1] > 3 * base and aps[-1] > aps[0]
    rounds = learn_store.session_rounds(s.session_id)
    assert [r.round for r in rounds] == [1, 2, 3, 4, 5]
    assert rounds[-1].n_labels == 5 + 3 * 20 and rounds[-1].fitted and not rounds[0].fitted
    assert rounds[-1].ranking_change is not None
    assert rounds[-1].queried == tuple(int(i) for i in r.query_ids)
    assert len(rounds[-1].labels) == rounds[-1].n_labels
    assert learn_store.session_labels(s.session_id).num_rows == 5 + 4 * 20


def test_resume_in_a_new_process_sees_the_same_state(learn_store, oscd_db, tmp_path):
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db, model_kind="rbf_svm")
    _seed_labels(s, truth)
    r = s.run_round()
    _answer(s, r.query_ids[:10], truth, user="ben")
    r2 = s.run_round()
    np.save(tmp_path / "scores.npy", r2.scores)
    # edits after the last round (a relabel, an undone label) do not change its ranking
    s.label(int(r2.query_ids[0]), 1, user="ben")
    assert s.undo_last_label("ben").patch_id == int(r2.query_ids[0])
    first = int(s.labels()[0][0])
    s.label(first, -int(s.labels()[1][0]), user="ana")
    s.close()
    url = learn_store.url
    learn_store.close()
    code = textwrap.dedent(f"""
        import json, numpy as np
        from eominer.store import open_store
        from eominer.learning.session import Session
        store = open_store({url!r})
        s = Session.open(store, {s.session_id!r})
        scores = s.current_scores()
        ref = np.load({str(tmp_path / 'scores.npy')!r})
        ids, y = s.labels()
        print(json.dumps({{"same": bool(np.array_equal(scores, ref)), "labels": len(ids),
                          "pending": s.pending_queries().tolist(), "status": s.status,
                          "rounds": len(s.rounds())}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    got = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert got["same"] is True
    assert got["labels"] == 15 and got["rounds"] == 2 and got["status"] == "open"
    assert got["pending"] == [int(i) for i in r2.query_ids]


def test_only_positives_uses_provisional_negatives(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db)
    for p in sorted(positives(truth))[:3]:
        s.label(p, 1, "ana")
    r = s.run_round()
    assert r.scores is not None and r.n_negative == 0
    assert any("provisional negatives" in n for n in r.notes)


@pytest.mark.parametrize("model", ["rbf_svm", "logistic"])
def test_a_slow_rbf_round_says_how_to_keep_the_labels_on_a_fast_model(
        learn_store, oscd_db, monkeypatch, model):
    """An RBF SVM's round grows with its labels; past SLOW_ROUND_S (made 0 here: no
    timing in a test) its notes name the copy on the logistic model. A logistic round,
    however slow, has no such note."""
    import eominer.learning.session as session

    monkeypatch.setattr(session, "SLOW_ROUND_S", 0.0)
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db, model_kind=model)
    _seed_labels(s, truth)
    r = s.run_round()
    n_labels = len(s.labels()[0])
    slow = [n for n in r.notes if n.startswith("this round took ")]
    if model == "logistic":
        assert slow == []
        return
    (note,) = slow
    assert note.endswith(
        f"s: an RBF SVM's rounds grow with its labels ({n_labels} here, over 896 patches); "
        "a copy of the session on the logistic model keeps every label and ranks in a "
        f"fraction of that (eominer session duplicate {s.session_id} --model logistic; the "
        "app: Sessions tab, Duplicate, and model logistic)")
    assert s.rounds()[-1].notes[-1] == note  # stored with the round


def test_only_negatives_gives_a_diverse_batch(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db)
    for p in sorted(set(truth) - positives(truth))[:3]:
        s.label(p, -1, "ana")
    r = s.run_round()
    assert r.scores is None and len(r.query_ids) == 20
    assert any("no positive label" in n for n in r.notes)
    with pytest.raises(SessionError, match="no fitted round"):
        s.publish()


def test_conflicting_users_latest_label_wins(learn_store, oscd_db):
    s = _create(learn_store, oscd_db)
    p = int(s.patch_ids[10])
    s.label(p, 1, "ana")
    s.label(p, -1, "ben")
    ids, y = s.labels()
    assert dict(zip(ids.tolist(), y.tolist()))[p] == -1
    assert s.conflicts() == [{"patch_id": p, "labels": {"ana": 1, "ben": -1}}]
    assert learn_store.session_labels(s.session_id).num_rows == 2
    assert s.undo_last_label("ben").patch_id == p
    ids, y = s.labels()
    assert dict(zip(ids.tolist(), y.tolist()))[p] == 1 and s.conflicts() == []


def test_label_many_is_one_all_or_nothing_write(learn_store, oscd_db):
    s = _create(learn_store, oscd_db)
    some = [int(p) for p in s.patch_ids[:30]]
    s.label(some[0], -1, "ana")
    assert s.label_many(some + some[:5], 1, "ana") == 30  # duplicates count once
    ids, y = s.labels()
    assert dict(zip(ids.tolist(), y.tolist())) == {p: 1 for p in some}  # the -1 replaced
    assert learn_store.session_labels(s.session_id).num_rows == 30
    coarse = learn_store.patches(oscd_db["product"], 32)["patch_id"].to_numpy()
    with pytest.raises(SessionError, match="not in this session's scope"):
        s.label_many([int(s.patch_ids[40]), int(coarse[0])], -1, "ana")
    with pytest.raises(SessionError, match="no patches selected"):
        s.label_many([], 1, "ana")
    assert learn_store.session_labels(s.session_id).num_rows == 30  # nothing half-written
    s.label_many(some[:10], -1, "ben", purpose="verify")
    vids, vy = s.labels("verify")
    assert vids.tolist() == sorted(some[:10]) and set(vy.tolist()) == {-1}


def test_bad_input_is_explicit(learn_store, oscd_db):
    s = _create(learn_store, oscd_db)
    coarse = learn_store.patches(oscd_db["product"], 32)["patch_id"].to_numpy()
    with pytest.raises(SessionError, match="not in this session's scope"):
        s.label(int(coarse[0]), 1, "ana")
    with pytest.raises(SessionError, match="must be \\+1 .* or -1"):
        s.label(int(s.patch_ids[0]), 0, "ana")
    with pytest.raises(SessionError, match="empty scope: no patches at level 64"):
        _create(learn_store, oscd_db, level=64)
    with pytest.raises(SessionError, match="not in the taxonomy") as err:
        Session.create(learn_store, "x", "ana", "no_such_concept", [oscd_db["product"]], 16,
                       [oscd_db["fs"]])
    assert "did you mean" not in str(err.value)
    for typed, near in (("water", "inland_waters or marine_waters"), ("forests", "forest")):
        with pytest.raises(SessionError, match=f"did you mean {near}\\? known: "):
            Session.create(learn_store, "x", "ana", typed, [oscd_db["product"]], 16,
                           [oscd_db["fs"]])
    with pytest.raises(SessionError, match="product 'nope' is not in"):
        Session.create(learn_store, "x", "ana", "new_construction", ["nope"], 16,
                       [oscd_db["fs"]])
    with pytest.raises(SessionError, match="no session 'nope'"):
        Session.open(learn_store, "nope")
    with pytest.raises(SessionError, match=r"unknown session parameter\(s\) \['batch'\]"):
        _create(learn_store, oscd_db, params={"batch": 5})


def test_scope_with_missing_features(learn_store, oscd_db):
    # the second date has patches but no features: a scope over both products ranks
    # only the patches that have them and says how many are missing
    s = Session.create(learn_store, "both", "ana", "new_construction",
                       [oscd_db["product"], oscd_db["product2"]], 16, [oscd_db["fs"]])
    assert s.data.n == 896 and s.missing == 896
    _seed_labels(s, oscd_db["truth"][16])
    r = s.run_round()
    assert any("896 patches of the scope have no features" in n for n in r.notes)
    with pytest.raises(SessionError, match=r"no features for the 896 patches .*: run "
                       r"`eominer extract` for these products \(no feature set covers them"):
        Session.create(learn_store, "x", "ana", "new_construction", [oscd_db["product2"]], 16,
                       [oscd_db["fs"]])
    # a set that does have features for the second date: the message names it
    ids = learn_store.patch_ids([oscd_db["product2"]], 16)
    other = learn_store.register_feature_set("second_date", 1, {}, ["x"])
    learn_store.write_features(other, ids, np.zeros((len(ids), 1), np.float32))
    with pytest.raises(SessionError, match=r"no features for the 896 patches .*: use the "
                       r"feature sets with features for these products at level 16: "
                       rf"{other.feature_set_id}$"):
        Session.create(learn_store, "x", "ana", "new_construction", [oscd_db["product2"]], 16,
                       [oscd_db["fs"]])


def test_changed_features_refuse_resume(learn_store, oscd_db):
    s = _create(learn_store, oscd_db)
    fs = learn_store.require_feature_set(oscd_db["fs"])
    pid = s.patch_ids[:5]
    learn_store.write_features(fs, pid, np.zeros((5, fs.dims), np.float32))
    with pytest.raises(SessionError, match="changed since it started"):
        Session.open(learn_store, s.session_id)
    s2 = Session.open(learn_store, s.session_id, accept_feature_change=True)
    assert s2.record.feature_signature != s.record.feature_signature
    assert learn_store.session(s.session_id).feature_signature == s2.record.feature_signature
    Session.open(learn_store, s.session_id)  # the new signature is recorded


def test_cold_start_and_find_more_like_this(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    s = _create(learn_store, oscd_db)
    first = s.cold_start(10)
    assert len(set(first.tolist())) == 10 and set(first.tolist()) <= set(truth)
    example = max(truth, key=truth.get)  # the most changed patch
    like = s.find_similar(example, 15)
    assert example not in like.tolist() and len(like) == 15
    # neighbours of a changed patch are changed far more often than the base rate
    hit = np.mean([truth[int(p)] > 0.05 for p in like])
    assert hit > 2 * np.mean([v > 0.05 for v in truth.values()])


def test_verification_and_stop_advice(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    sample = s.verification_sample(10)
    scores = s.current_scores()
    rows = s.data.rows(sample)
    assert len(sample) > 0 and (scores[rows] >= 0.5).all()
    truth = oscd_db["truth"][16]
    for p in sample:
        s.label(int(p), 1 if truth[int(p)] > 0.05 else -1, "ana", purpose="verify")
    qual = s.quality()
    ok = sum(truth[int(p)] > 0.05 for p in sample)
    assert qual["n_verified"] == len(sample)
    assert qual["precision"] == pytest.approx(ok / len(sample))
    assert qual["precision_low"] <= qual["precision"] <= qual["precision_high"]
    assert isinstance(qual["stop"], bool) and qual["advice"]
    train_ids, _ = s.labels()
    assert not set(sample.tolist()) & set(train_ids.tolist())  # kept out of training


def test_rounds_with_no_new_answer_are_no_evidence_of_stability(learn_store, oscd_db):
    """Learn clicked again and again with no new label: the ranking barely moves, which
    used to read as "ranking stable" after two such rounds."""
    s = _create(learn_store, oscd_db, model_kind="logistic")
    _seed_labels(s, oscd_db["truth"][16])
    first = s.run_round()
    again = [s.run_round(), s.run_round()]
    assert first.quality["flip_rate"] is None  # nothing to compare with
    for r in again:  # measured and shown, but not counted
        assert r.quality["flip_rate"] is not None and r.quality["flip_rate"] < 0.01
        assert r.quality["stop"] is False
        assert r.quality["advice"] == "not enough rounds to judge stability yet"
        assert any(n.startswith(f"no new answer since round {r.round - 1}") for n in r.notes)
    reopened = Session.open(learn_store, s.session_id)  # the same advice from the store
    assert reopened.quality()["stop"] is False
    _answer(reopened, first.query_ids[:5], oscd_db["truth"][16])
    r = reopened.run_round()  # new answers: this round's change counts again
    assert not any(n.startswith("no new answer") for n in r.notes)


def test_a_round_asks_1_to_BATCH_MAX_questions_and_says_when_the_scope_runs_out(
        learn_store, oscd_db):
    from eominer.store.records import BATCH_MAX

    with pytest.raises(SessionError, match=f"at most {BATCH_MAX} per round"):
        _create(learn_store, oscd_db, params={"batch_size": BATCH_MAX + 1})
    fine = _create(learn_store, oscd_db)  # 896 patches: the limit lowered below them
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("eominer.learning.session.BATCH_MAX", 500)
        r = fine.run_round(n=1000)  # as a session stored before the limit would ask
    assert len(r.query_ids) == 500 and fine.data.n < 1000
    assert r.notes[0] == "1000 questions asked for; a round asks at most 500"
    s = _create(learn_store, oscd_db, level=32)
    with pytest.raises(SessionError, match="at least 1 question, got 0"):
        s.run_round(n=0)
    truth = oscd_db["truth"][32]
    pos = positives(truth)
    ids = [int(p) for p in s.patch_ids]
    assert len(ids) < BATCH_MAX
    r = s.run_round(n=BATCH_MAX + 500)  # more than a round asks and than the scope holds
    assert len(r.query_ids) == len(ids)
    assert f"{BATCH_MAX + 500} questions asked for, but only {len(ids)} patches" in r.notes[0]
    s.label_many([p for p in ids[5:] if p in pos], 1, "ana")
    s.label_many([p for p in ids[5:] if p not in pos], -1, "ana")
    r = s.run_round(n=20)
    assert sorted(r.query_ids.tolist()) == sorted(ids[:5])
    assert "but only 5 patches of the scope are unlabelled" in r.notes[0]
    s.label_many(ids[:5], -1, "ana")
    r = s.run_round(n=20)
    assert len(r.query_ids) == 0 and r.scores is not None
    assert r.notes[0] == "every patch of the scope has a label: nothing left to ask"
