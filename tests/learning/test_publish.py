"""Publish (annotations + SQL) on real OSCD data."""

from __future__ import annotations

import datetime as dt

from tests.learning.sessions import _trained


def test_publish_then_sql(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    version = s.publish()
    scores = s.current_scores()
    n = learn_store.query("SELECT COUNT(*) FROM annotations WHERE session_id = ?",
                          (s.session_id,))[0][0]
    assert n == s.data.n == 896
    # the question of the issue, in SQL: label, score threshold, acquisition date
    rows = learn_store.query(
        "SELECT a.patch_id, a.score FROM annotations a JOIN patches p ON p.patch_id = a.patch_id "
        "JOIN products pr ON pr.product_id = p.product_id WHERE a.label_name = ? "
        "AND a.score > ? AND pr.acquired > ? ORDER BY a.patch_id",
        ("new_construction", 0.8, dt.datetime(2016, 5, 1)))
    ids, y = s.labels()
    expected = set(s.patch_ids[scores > 0.8].tolist())
    expected = (expected - set(ids[y == -1].tolist())) | set(ids[y == 1].tolist())
    assert {r[0] for r in rows} == expected and len(expected) > 0
    t = learn_store.annotated_patches("new_construction", 0.8, dt.datetime(2017, 5, 1))
    assert t.num_rows == 0  # the session's product was acquired 2016-05-04
    (mv,) = learn_store.query("SELECT DISTINCT model_version FROM annotations")[0]
    assert mv == version and version.startswith(s.session_id[:8])
    assert learn_store.session(s.session_id).status == s.status == "published"
