"""The Sessions tab's Delete, without a browser: archived sessions only, two clicks."""

from __future__ import annotations


def test_delete_shows_with_the_archived_list_and_asks_once(learn_store, oscd_db):
    from eominer.learning import manage
    from eominer.ui.sessions import SessionsView
    from eominer.ui.state import AppState
    from tests.learning.sessions import _create

    s = _create(learn_store, oscd_db)
    s.label(int(s.patch_ids[0]), 1, "ana")
    manage.archive(learn_store, s.session_id, "ana")
    view = SessionsView(state=AppState(learn_store, user="ana"))
    assert not view._delete.visible and view._rows == []
    view._archived.value = True
    assert view._delete.visible and [r.record.session_id for r in view._rows] == [s.session_id]
    view.select(s.session_id)
    view._delete.clicks += 1  # the first click asks
    assert learn_store.session(s.session_id) is not None
    name = learn_store.session(s.session_id).name
    assert (f"delete session {s.session_id} ({name}) with its 1 label(s) and 0 round(s)? "
            "Click Delete again") in view.state.message
    view.select(s.session_id)
    view._delete.clicks += 1
    assert learn_store.session(s.session_id) is None and view._rows == []
    assert f"session {s.session_id} deleted with 1 label(s)" in view.state.message


def test_delete_refuses_an_open_or_unarchived_session(learn_store, oscd_db):
    from eominer.ui.sessions import SessionsView
    from eominer.ui.state import AppState
    from tests.learning.sessions import _create

    s = _create(learn_store, oscd_db)
    state = AppState(learn_store, user="ana")
    view = SessionsView(state=state)
    view.select(s.session_id)
    view._delete.clicks += 1  # not archived: the library says so at once
    assert "is not archived: archive it first" in state.message
    state.open_session(s.session_id)
    view.select(s.session_id)
    view._delete.clicks += 1
    assert f"session {s.session_id} is open in this window" in state.message
    assert learn_store.session(s.session_id) is not None
