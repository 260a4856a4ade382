"""The quality check of a session on the real OSCD Bordeaux store: a stratified sample of
the latest round, answered from the reference change map, the estimate stored with the
round and recomputed from the labels in the database."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning import verification as v
from tests.conftest import positives
from tests.learning.sessions import _create, _trained, recompute


def test_stratified_check_stored_with_the_round(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    pos = positives(truth)
    fresh = _create(learn_store, oscd_db)
    with pytest.raises(SessionError, match="no ranking to check"):
        fresh.quality_sample()
    s = _trained(learn_store, oscd_db)
    round_no = len(s.rounds())
    train_before = s.labels()
    labelled = set(train_before[0].tolist())
    ids, t = s.quality_sample(0.5, 40)
    assert t == 0.5 and len(ids) == 40 == len(set(ids.tolist()))
    assert not set(ids.tolist()) & labelled
    scores = s.current_scores()
    strata = v.stratum_of(scores[s.data.rows(ids)], t)
    assert (strata == 0).sum() == 20 and set(strata.tolist()) == {0, 1, 2, 3}
    # the same request gives the same sample (seeded by session, round and answers)
    assert s.quality_sample(0.5, 40)[0].tolist() == ids.tolist()
    assert s.check_quality() is None  # no answer yet: nothing to estimate, nothing stored
    assert learn_store.session_rounds(s.session_id)[-1].verified_n is None
    for p in ids:
        s.label(int(p), 1 if int(p) in pos else -1, "ana", purpose="verify")
    est = s.check_quality()
    assert est.verified == 40
    r = learn_store.session_rounds(s.session_id)[-1]
    assert r.round == round_no and r.verify_threshold == 0.5 and r.verified_n == 40
    assert (r.precision_estimate, r.precision_low, r.precision_high, r.recall_estimate,
            r.recall_low, r.recall_high) == (est.precision, est.precision_low,
                                              est.precision_high, est.recall,
                                              est.recall_low, est.recall_high)
    assert recompute(learn_store, s) == est
    # the truth of the whole scope (every patch's reference): inside the intervals
    pred = scores >= t
    y = np.asarray([int(p) in pos for p in s.patch_ids.tolist()])
    true_p, true_r = y[pred].mean(), y[pred].sum() / y.sum()
    assert est.precision_low <= true_p <= est.precision_high, (est, true_p)
    assert est.recall_low <= true_r <= est.recall_high, (est, true_r)
    # the answers are kept out of training; the session reports the stored check
    assert [a.tolist() for a in s.labels()] == [a.tolist() for a in train_before]
    q = s.quality()
    assert (q["precision"], q["recall"], q["n_verified"], q["threshold"]) == (
        est.precision, est.recall, 40, 0.5)
    # another threshold within the same round keeps the round's (the strata are fixed);
    # more patches come from those not asked yet
    more, t2 = s.quality_sample(0.3, 10)
    assert t2 == 0.5 and not set(more.tolist()) & (set(ids.tolist()) | labelled)
    # a new round: the check belongs to the round before
    s.run_round()
    assert s.quality()["precision"] is None
    rounds = learn_store.session_rounds(s.session_id)
    assert rounds[-2].recall_estimate == est.recall and rounds[-1].verified_n is None
