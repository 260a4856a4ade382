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


def test_session_verify_asks_the_stratified_sample_and_quality_estimates(
        learn_store, oscd_db, tmp_path, capsys):
    """`session verify` prints the app's stratified sample of the latest round (the same
    ids as `Session.quality_sample`); answers given with `session label --verify` feed
    `session quality`, which prints precision and recall with their 95 % intervals and
    stores them with the round, equal to the estimator run on the database alone."""
    from eominer.learning.quality_check import interval_text
    from eominer.learning.session import Session
    from eominer.store import open_store
    from tests.learning.sessions import recompute

    s = _trained(learn_store, oscd_db, rounds=1)
    db, sid = learn_store.url, s.session_id
    want, _ = s.quality_sample(0.3, 16)  # what the app asks (fixes the round's threshold)
    learn_store.close()
    cli = in_process(capsys)
    home = tmp_path / "ws"
    r = cli(["session", "quality", sid, "--db", db], home)  # no sample asked yet: how to
    assert r.returncode == 1 and "`eominer session verify`" in r.stderr
    sheet = tmp_path / "verify.png"
    r = cli(["session", "verify", sid, "--n", "16", "--threshold", "0.3", "--db", db,
             "--sheet", str(sheet)], home)
    assert r.returncode == 0, r.stderr
    ids = [int(v) for v in r.stdout.split()]
    assert ids == want.tolist() and len(set(ids)) == 16
    assert "positives score >= 0.30" in r.stderr
    assert f"sheet: {sheet} (16 patches, in this order)" in r.stderr
    _first_tile_is(sheet, db, ids[0], rows=4)
    # before any answer: no estimate, and a message saying what to do
    r = cli(["session", "quality", sid, "--db", db], home)
    assert r.returncode != 0 and "session label --verify" in r.stderr
    pos = positives(oscd_db["truth"][16])
    answers = [f"{p}={'+1' if p in pos else '-1'}" for p in ids]
    r = cli(["session", "label", sid, *answers, "--verify", "--user", "ana", "--db", db], home)
    assert r.returncode == 0, r.stderr
    r = cli(["session", "quality", sid, "--db", db], home)
    assert r.returncode == 0, r.stderr
    with open_store(db) as store:
        rnd = store.session_rounds(sid)[-1]
        est = recompute(store, Session.open(store, sid))
    assert rnd.verified_n == 16 and rnd.verify_threshold == 0.3
    assert (rnd.precision_estimate, rnd.precision_low, rnd.precision_high,
            rnd.recall_estimate, rnd.recall_low, rnd.recall_high) == (
        est.precision, est.precision_low, est.precision_high, est.recall, est.recall_low,
        est.recall_high)
    lines = r.stdout.splitlines()
    assert lines[0] == f"round {rnd.round}, positives score >= 0.30, 16 answers"
    assert lines[1] == "precision " + interval_text(est.precision, est.precision_low,
                                                    est.precision_high)
    assert lines[2] == "recall " + interval_text(est.recall, est.recall_low, est.recall_high)
    assert "(95 % CI " in lines[1] and "(95 % CI " in lines[2]


def _first_tile_is(sheet, db, patch_id: int, rows: int) -> None:
    """The sheet holds `rows` rows of 128 px tiles, the first being `patch_id` as the
    map shows it."""
    import numpy as np
    from PIL import Image

    from eominer.store import open_store
    from eominer.ui.thumbnails import patch_images

    img = np.asarray(Image.open(sheet).convert("RGBA"))
    assert img.shape[1] == 6 + 5 * (128 + 6) and (img.shape[0] - 6) % rows == 0
    with open_store(db, read_only=True) as store:
        want = patch_images(store, [patch_id], context=0.5)[0]
    opaque = want[..., 3] == 255
    assert np.array_equal(img[6:134, 6:134][opaque][:, :3], want[opaque][:, :3])
