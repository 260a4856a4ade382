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
