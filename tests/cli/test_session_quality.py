"""`eominer session show` prints the latest round's quality check (precision and recall
with their 95 % intervals), as stored with the round."""

from __future__ import annotations

import json

from tests.cli.process import in_process
from tests.conftest import positives
from tests.learning.sessions import _trained


def test_session_show_prints_the_quality_check(learn_store, oscd_db, tmp_path, capsys):
    s = _trained(learn_store, oscd_db, rounds=1)
    pos = positives(oscd_db["truth"][16])
    ids, _ = s.quality_sample(0.5, 16)
    for p in ids:
        s.label(int(p), 1 if int(p) in pos else -1, "ana", purpose="verify")
    est = s.check_quality()
    db, sid = learn_store.url, s.session_id
    learn_store.close()
    r = in_process(capsys)(["session", "show", sid, "--db", db], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    q = json.loads(r.stdout)["quality"]
    assert (q["precision"], q["precision_low"], q["precision_high"], q["recall"],
            q["recall_low"], q["recall_high"], q["n_verified"], q["threshold"]) == (
        est.precision, est.precision_low, est.precision_high, est.recall, est.recall_low,
        est.recall_high, 16, 0.5)
    assert q["round"] == 2 and isinstance(q["stop"], bool)
