"""eominer.learning.manage: a user's sessions and the team's, on the real OSCD store."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning import manage
from eominer.learning.session import Session
from tests.learning.sessions import _create, _trained


def test_each_user_sees_their_sessions_and_the_shared_ones(learn_store, oscd_db):
    mine = _create(learn_store, oscd_db)
    theirs = Session.create(learn_store, "roads", "ben", "new_construction",
                            [oscd_db["product"]], 16, [oscd_db["fs"]])
    mine.label(int(mine.patch_ids[0]), 1, "ana")
    ids = lambda user: [s.record.session_id for s in manage.session_summaries(learn_store, user)]  # noqa: E731
    assert ids("ana") == [mine.session_id] and ids("ben") == [theirs.session_id]
    (row,) = manage.session_summaries(learn_store, "ana")
    assert (row.labels, row.rounds, row.shared) == (1, 0, False)
    with pytest.raises(SessionError, match="belongs to ben and is not shared; ask ben"):
        manage.visible_session(learn_store, theirs.session_id, "ana")
    with pytest.raises(SessionError, match="no session 'nope'"):
        manage.visible_session(learn_store, "nope", "ana")
    manage.share(learn_store, theirs.session_id, "ben")
    assert sorted(ids("ana")) == sorted([mine.session_id, theirs.session_id])
    assert manage.visible_session(learn_store, theirs.session_id, "ana").params.shared
    with pytest.raises(SessionError, match="only its owner renames"):
        manage.rename(learn_store, theirs.session_id, "ana", "mine now")


def test_rename_archive_and_restore_keep_labels(learn_store, oscd_db):
    s = _create(learn_store, oscd_db)
    s.label(int(s.patch_ids[3]), -1, "ana")
    manage.rename(learn_store, s.session_id, "ana", "  bordeaux roofs ")
    assert learn_store.session(s.session_id).name == "bordeaux roofs"
    with pytest.raises(SessionError, match="cannot be empty"):
        manage.rename(learn_store, s.session_id, "ana", "  ")
    manage.archive(learn_store, s.session_id, "ana")
    assert manage.session_summaries(learn_store, "ana") == []
    (row,) = manage.session_summaries(learn_store, "ana", archived=True)
    assert (row.record.status, row.labels) == ("archived", 1)
    manage.archive(learn_store, s.session_id, "ana", archived=False)
    assert learn_store.session(s.session_id).status == "closed"
    again = Session.open(learn_store, s.session_id)  # a closed session reopens
    assert again.status == "open" and again.labels()[0].tolist() == [int(s.patch_ids[3])]


def test_only_an_archived_session_of_its_owner_is_deleted(learn_store, oscd_db):
    s = _create(learn_store, oscd_db)
    s.label(int(s.patch_ids[0]), 1, "ana")
    s.label(int(s.patch_ids[1]), -1, "ana")
    other = _create(learn_store, oscd_db)
    other.label(int(other.patch_ids[0]), 1, "ana")
    with pytest.raises(SessionError, match=rf"session {s.session_id} \(.*\) is not archived: "
                       rf"archive it first \(eominer session archive {s.session_id} --user ana"):
        manage.delete(learn_store, s.session_id, "ana")
    manage.archive(learn_store, s.session_id, "ana")
    manage.share(learn_store, s.session_id, "ana")  # the team sees it; ben may not delete it
    with pytest.raises(SessionError, match="only its owner renames, shares, archives or deletes"):
        manage.delete(learn_store, s.session_id, "ben")
    n = manage.delete(learn_store, s.session_id, "ana")
    assert (n["labels"], n["sessions"]) == (2, 1)
    assert learn_store.session(s.session_id) is None
    with pytest.raises(SessionError, match=f"no session '{s.session_id}'"):
        manage.delete(learn_store, s.session_id, "ana")
    assert other.labels()[0].tolist() == [int(other.patch_ids[0])]


def test_duplicate_keeps_the_labels_with_another_model(learn_store, oscd_db):
    src = _trained(learn_store, oscd_db, rounds=1)
    ids, y = src.labels()
    with pytest.raises(SessionError, match="not shared"):
        manage.duplicate(learn_store, src.session_id, "ben")
    manage.share(learn_store, src.session_id, "ana")
    copy = manage.duplicate(learn_store, src.session_id, "ben", model_kind="random_forest")
    assert copy.record.owner == "ben" and copy.record.model_kind == "random_forest"
    assert copy.session_id != src.session_id and copy.rounds() == []
    got = learn_store.session_labels(copy.session_id).to_pylist()
    assert sorted((r["patch_id"], r["label"]) for r in got) == sorted(zip(ids.tolist(), y.tolist()))
    r = copy.run_round()
    assert r.scores is not None and np.isfinite(r.scores).all()


def test_refine_publishes_and_starts_the_finer_level_in_the_api_the_cli_and_the_app(
        learn_store, oscd_db, capsys, tmp_path):
    from eominer.ui.sessions import SessionsView
    from eominer.ui.state import AppState
    from tests.cli.process import in_process

    coarse = _trained(learn_store, oscd_db, level=32, rounds=1)
    with pytest.raises(SessionError, match="belongs to ana and is not shared"):
        manage.refine(learn_store, coarse.session_id, "ben", 16)
    manage.share(learn_store, coarse.session_id, "ana")
    with pytest.raises(SessionError, match="belongs to ana: refining publishes it"):
        manage.refine(learn_store, coarse.session_id, "ben", 16)
    with pytest.raises(SessionError, match="cannot cascade from level 32 to 64"):
        manage.refine(learn_store, coarse.session_id, "ana", 64)
    fresh = Session.create(learn_store, "empty", "ana", "new_construction",
                           [oscd_db["product"]], 32, [oscd_db["fs"]])
    with pytest.raises(SessionError, match="no round yet: label and run a round"):
        manage.refine(learn_store, fresh.session_id, "ana", 16)
    fine = manage.refine(learn_store, coarse.session_id, "ana", 16, threshold=0.5)
    pos32 = learn_store.positive_annotations(coarse.session_id)
    kids = learn_store.patches(oscd_db["product"], 16)
    under = kids["patch_id"].to_numpy()[np.isin(kids["parent_id"].fill_null(-1).to_numpy(), pos32)]
    assert 0 < len(under) < len(kids) and np.array_equal(np.sort(fine.patch_ids), np.sort(under))
    assert learn_store.session(coarse.session_id).status == "published"
    assert (fine.level, fine.record.owner, fine.params.parent_session) == (16, "ana",
                                                                          coarse.session_id)

    # the app: the Sessions tab offers the finer levels of the selected session
    state = AppState(learn_store, user="ana")
    view = SessionsView(state=state)
    view.select(coarse.session_id)
    assert view._refine_level.options == [16]
    view._refine.clicks += 1
    assert state.session is not None and state.session.level == 16
    assert state.session.params.parent_session == coarse.session_id
    assert np.array_equal(np.sort(state.session.patch_ids), np.sort(under))
    view.select(state.session.session_id)  # 16 px is the finest level: nothing below
    assert view._refine_level.options == []

    # the terminal
    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    r = run(["session", "refine", coarse.session_id, "--user", "ana", "--level", "16",
             "--threshold", "0.5", "--db", db], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert f"level 16 px  {len(under)} patches under the positives of {coarse.session_id}" \
        in r.stdout
    r = run(["session", "refine", coarse.session_id, "--user", "ana", "--level", "64",
             "--db", db], tmp_path / "ws")
    assert r.returncode == 1 and "cannot cascade from level 32 to 64" in r.stderr
