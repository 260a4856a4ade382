"""The Sessions tab's Delete, without a browser: archived sessions only, two clicks."""

from __future__ import annotations


def formatters(model) -> dict[str, str]:
    """The Tabulator model's formatters that are not plain text, by column (Panel 1.10
    sends each as a dict with its Bokeh type, Panel 1.9 as the Bokeh model)."""
    kinds = {c.field: c.formatter["type"] if isinstance(c.formatter, dict)
             else type(c.formatter).__name__ for c in model.columns if c.field != "index"}
    return {field: kind for field, kind in kinds.items() if kind != "StringFormatter"}


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
    shown = view._table.get_root()  # the table as a browser gets it, empty
    # an empty list says where sessions come from (Tabulator draws it in the table)
    assert shown.configuration["placeholder"] == "No session here: start one in Scope"
    view._archived.value = True
    assert view._delete.visible and [r.record.session_id for r in view._rows] == [s.session_id]
    # rows that came into an empty table show dates as dates, not epoch milliseconds
    assert formatters(shown) == {"labels": "NumberFormatter", "rounds": "NumberFormatter",
                                 "last activity": "DateFormatter", "created": "DateFormatter"}
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


def test_the_cli_defaults_to_the_apps_user_and_the_list_says_what_it_hides(
        learn_store, oscd_db, tmp_path, capsys):
    """Without a log-in the app's user is the operating-system user, and so is the CLI's
    default --owner / --user: a session made in the terminal is the user's own in the
    app. Another owner's private session is not listed, and the tab says one is hidden."""
    from eominer.learning import manage
    from eominer.learning.session import Session
    from eominer.store import open_store
    from eominer.ui.auth import current_user
    from eominer.ui.sessions import SessionsView
    from eominer.ui.state import AppState
    from eominer.workspace import os_user
    from tests.cli.process import in_process
    from tests.learning.sessions import _create, create_args

    me = current_user()
    assert me == os_user() and me != "ana"
    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    args = create_args(db, oscd_db)
    at = args.index("--owner")
    r = run(args[:at] + args[at + 2:], tmp_path / "ws")  # no --owner
    assert r.returncode == 0, r.stderr
    sid = r.stdout.strip()
    patch = _store_patch(db, sid)
    r = run(["session", "label", sid, f"{patch}=y", "--db", db], tmp_path / "ws")  # no --user
    assert r.returncode == 0, r.stderr

    with open_store(db) as store:
        assert store.session(sid).owner == me
        assert store.session_labels(sid)["user_name"].to_pylist() == [me]
        view = SessionsView(state=AppState(store, user=me))
        assert [r.record.session_id for r in view._rows] == [sid]
        assert not view._hidden.visible
        other = _create(store, oscd_db)  # ana's, private
        view.refresh()
        assert [r.record.session_id for r in view._rows] == [sid]
        assert view._hidden.visible
        assert (f"1 session of other users (ana: 1) is not shared with you ({me})"
                in view._hidden.object)
        manage.share(store, other.session_id, "ana")
        view.refresh()
        assert {r.record.session_id for r in view._rows} == {sid, other.session_id}
        assert not view._hidden.visible
        # a user name is shown as text, never as the page's HTML
        Session.create(store, "x", "<img src=x onerror=alert(1)>", "new_construction",
                       [oscd_db["product"]], 16, [oscd_db["fs"]])
        view.refresh()
        assert "&lt;img src=x onerror=alert(1)&gt;: 1" in view._hidden.object
        assert "<img" not in view._hidden.object


def _store_patch(db: str, sid: str) -> int:
    from eominer.learning.session import Session
    from eominer.store import open_store

    with open_store(db, read_only=True) as store:
        return int(Session.open(store, sid).patch_ids[0])


def test_the_open_session_is_selected_in_the_list(learn_store, oscd_db):
    """Opening the Sessions tab (refresh) selects the session open in this window, so
    Refine, Rename... act on it without a search through the list; a session the analyst
    selected stays selected, wherever its row goes."""
    from eominer.ui.sessions import SessionsView
    from eominer.ui.state import AppState
    from tests.learning.sessions import _create

    first, s = _create(learn_store, oscd_db), _create(learn_store, oscd_db)
    state = AppState(learn_store, user="ana")
    view = SessionsView(state=state)
    assert view._table.selection == []
    state.open_session(s.session_id)
    view.refresh()
    assert [view._rows[i].record.session_id for i in view._table.selection] == [s.session_id]
    view.select(first.session_id)
    view.refresh()
    assert [view._rows[i].record.session_id for i in view._table.selection] == [
        first.session_id]
    # another window starts a session: it comes first in the list, and the selection
    # stays on the same session, not on the same row
    _create(learn_store, oscd_db).label(int(s.patch_ids[0]), 1, "ana")
    view.refresh()
    assert [view._rows[i].record.session_id for i in view._table.selection] == [
        first.session_id]
