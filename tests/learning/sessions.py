"""Sessions built for the learning tests on the real OSCD store (`learn_store`)."""

from __future__ import annotations

import numpy as np

from eominer.learning import verification as v
from eominer.learning.engine import with_answers
from eominer.learning.session import Session
from tests.conftest import positives


def _create(store, oscd_db, level=16, **kw):
    return Session.create(store, "new buildings", "ana", "new_construction",
                          [oscd_db["product"]], level, [oscd_db["fs"]], **kw)


def create_args(db: str, oscd_db) -> list[str]:
    """`eominer session create` of the learning store's product and feature set."""
    return ["session", "create", "--db", db, "--name", "sites", "--owner", "ana", "--concept",
            "new_construction", "--product", oscd_db["product"], "--level", "16",
            "--features", oscd_db["fs"]]


def answered(session, scores, labels=None) -> np.ndarray:
    """A copy of `scores` with the session's answers over them (1 yes, 0 no), as its
    ranking shows them: the labels of its latest fitted round unless `labels` given."""
    if labels is None:
        labels = session.round_labels([r for r in session.rounds() if r.fitted][-1])
    ids, y = labels
    return with_answers(np.array(scores, copy=True), session.data.rows(ids), y)


def _answer(session, ids, truth, user="ana"):
    pos = positives(truth)
    for p in ids:
        session.label(int(p), 1 if int(p) in pos else -1, user)


def _seed_labels(session, truth, n_pos=2, n_neg=3, user="ana"):
    pos = sorted(positives(truth))
    neg = sorted(set(truth) - set(pos))
    for p in pos[:n_pos]:
        session.label(p, 1, user)
    for p in neg[:: max(1, len(neg) // n_neg)][:n_neg]:
        session.label(p, -1, user)


def _trained(store, oscd_db, level=16, rounds=2, model_kind="logistic", params=None):
    truth = oscd_db["truth"][level]
    s = Session.create(store, "new buildings", "ana", "new_construction",
                       [oscd_db["product"]], level, [oscd_db["fs"]], model_kind=model_kind,
                       params=params)
    pos = sorted(positives(truth))
    neg = sorted(set(truth) - set(pos))
    for p in pos[:3]:
        s.label(p, 1, "ana")
    for p in neg[::40][:4]:
        s.label(p, -1, "ana")
    for _ in range(rounds):
        r = s.run_round()
        for p in r.query_ids:
            s.label(int(p), 1 if int(p) in positives(truth) else -1, "ana")
    s.run_round()
    return s


def recompute(store, session) -> v.Estimate:
    """The estimate from the database alone: the round's threshold, the labels table
    (most recent label per patch) and the round's scores."""
    r = store.session_rounds(session.session_id)[-1]
    rows = store.query(
        "SELECT patch_id, label, purpose, round FROM labels WHERE session_id = ? "
        "ORDER BY labelled_at, patch_id, user_name", (session.session_id,))
    latest = {int(p): (int(lab), purpose, int(rnd)) for p, lab, purpose, rnd in rows}
    index = {int(p): i for i, p in enumerate(session.patch_ids.tolist())}
    n = len(index)
    known, known_yes, sampled, sampled_yes = (np.zeros(n, bool) for _ in range(4))
    for p, (lab, purpose, rnd) in latest.items():
        if purpose == "verify" and rnd == r.round:
            sampled[index[p]], sampled_yes[index[p]] = True, lab == 1
        else:
            known[index[p]], known_yes[index[p]] = True, lab == 1
    strata = v.tally(session.current_scores(), r.verify_threshold, known, known_yes,
                     sampled, sampled_yes)
    return v.estimate(strata)
