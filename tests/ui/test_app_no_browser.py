"""eominer.ui.app without a browser (test_app.py drives the whole app in Chromium)."""

from __future__ import annotations

import pytest

from eominer.store.base import utcnow
from tests.conftest import LEARN_ENGINE, engine_db, engine_url

from .test_sessions_view import formatters


@pytest.mark.skipif(LEARN_ENGINE != "duckdb", reason="DuckDB's file lock and EOMINER_DB_WAIT "
                    "(monetdbe's: tests/store/test_base.py)")
def test_app_says_so_when_a_batch_job_holds_the_database(tmp_path, monkeypatch):
    """DuckDB has one writer per file: eominer processes take turns (each holds it per
    unit of work), but a foreign process that keeps it open longer than EOMINER_DB_WAIT
    gets a page saying what is wrong and what to do, instead of a failure."""
    import subprocess
    import sys

    from eominer.store.engines import DuckDBEngine
    from eominer.ui.app import App

    monkeypatch.setattr(DuckDBEngine, "wait", 1.0)

    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        app = App(db=f"duckdb:///{db}")
        assert app.error is not None
        assert "stayed busy for 1 s" in app.error and "EOMINER_DB_WAIT" in app.error
        page = app.__panel__()
        alert = page.objects[0]
        assert "The database cannot be opened" in alert.object
        assert "Nothing you labelled is lost" in alert.object
    finally:
        holder.kill()
        holder.wait()


def test_the_poll_reads_the_jobs_not_ended_once_for_the_status_line_and_the_offer(
        tmp_path, monkeypatch):
    """Every 3 s per browser session: one aggregate (`Store.unended_jobs`), not one per
    view; both the status line and the Resume offer still say the stopped job."""
    import panel as pn

    from eominer.store import open_store
    from eominer.ui.app import App

    url = engine_url(engine_db(tmp_path, "db"))
    with open_store(url) as store:
        store.schedule_tasks("extract-x", "extract", [{
            "task_id": f"spectral/P/{i}", "product_id": "P", "feature_set_id": "spectral",
            "block": i, "n_items": 1} for i in range(3)])
        store.execute("UPDATE jobs SET status = 'stopped', started = ?, finished = ?",
                      (utcnow(),) * 2)
        with store.transaction():
            store.record_job_command("extract-x", "eominer extract --features spectral",
                                     str(tmp_path), "ana")
    app = App(db=url, user="ana")
    try:
        assert app.error is None
        calls = []
        read = app.state.store.unended_jobs
        monkeypatch.setattr(app.state.store, "unended_jobs",
                            lambda: calls.append(1) or read())
        app._poll_jobs()
        assert len(calls) == 1
        assert "1 job(s) stopped with 3 task(s) left" in app.status._jobs.object
        (label,) = app.scope.jobs._stopped.options
        assert label.startswith("extract --features spectral (3 of 3 task(s) left; last ran ")
        assert app.scope.jobs._stopped.value == ("extract-x",
                                                 "eominer extract --features spectral")
        # a poll that fails (a dropped connection, a bug) keeps the app up and what it
        # showed; the server's log gets the first failure of its kind, not one every 3 s
        import contextlib
        import io

        def broken() -> list:
            raise RuntimeError("connection to the database lost")

        monkeypatch.setattr(app.state.store, "unended_jobs", broken)
        seen = []
        monkeypatch.setattr(app.publish, "refresh", lambda: seen.append(1))
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            app._poll_jobs()
            app._poll_jobs()
        assert log.getvalue().count("reading the unended jobs failed") == 1
        assert "RuntimeError: connection to the database lost" in log.getvalue()
        assert len(seen) == 2  # the rest of the poll went on
        assert "1 job(s) stopped with 3 task(s) left" in app.status._jobs.object
    finally:  # the server's store, kept for the process: monetdbe opens one database a
        # process, and the next tests open theirs
        store = pn.state.cache.pop(f"eominer-store:{url}", None)
        if store is not None:
            store.close()


def test_an_empty_workspace_says_how_to_fill_it_and_shows_what_the_cli_ingests(
        tmp_path, monkeypatch, shared_data):
    """A first start: the Scope tab says what to run (with the app's own --db when it is
    not the default workspace), and a product ingested by another process meanwhile
    appears at the next poll, without a page reload."""
    import os
    import subprocess
    import sys

    import panel as pn

    from eominer.ingest import ingest_paths
    from eominer.ui.app import App

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EOMINER_DB", raising=False)
    url = engine_url(engine_db(tmp_path, "team"))
    try:
        app = App(db=url, user="ana")
        empty = app.scope._empty
        assert empty.visible and "has no products yet" in empty.object
        assert f"`eominer ingest --db {url} S2A_MSIL2A_....SAFE`" in empty.object
        assert f"`eominer demo --no-serve --db {url}`" in empty.object
        assert app.state.message.startswith("no products yet")
        app._poll_jobs()  # nothing came: nothing read again
        assert empty.visible and app.scope._table.value.empty
        shown = app.scope._table.get_root()  # the table as a browser gets it, empty

        first = shared_data / "oscd" / "images" / "bordeaux" / "imgs_1"
        if LEARN_ENGINE == "duckdb":  # another process: the CLI
            env = {**os.environ, "EOMINER_HOME": str(tmp_path / "home")}
            done = subprocess.run(
                [sys.executable, "-m", "eominer", "ingest", "--db", url, "--levels", "64",
                 "--workers", "0", str(first)], env=env, capture_output=True, text=True,
                timeout=300)
            assert done.returncode == 0, done.stderr
        else:  # monetdbe opens a database in one process only: the ingest runs here
            ingest_paths(app.state.store, [first], levels=(64,))
        app._poll_jobs()
        assert not empty.visible and empty.object == ""
        assert app.state.message == ("1 product ingested: tick them here, extract their "
                                     "features and start a session")
        table = app.scope._table.value
        assert list(table["product_id"]) == [p.product_id
                                             for p in app.state.store.product_list()]
        assert len(table) == 1 and table["patches"].iloc[0] > 0
        # its date shows as a date, not as epoch milliseconds (ui/tables.py)
        assert formatters(shown) == {"acquired": "DateFormatter", "width": "NumberFormatter",
                                     "height": "NumberFormatter", "patches": "NumberFormatter"}

        # the default workspace: the command needs no --db
        default = App(db=None, user="ben")
        assert "`eominer ingest S2A_MSIL2A_....SAFE`" in default.scope._empty.object
    finally:  # the server's stores, kept for the process (monetdbe: one database a process)
        for key in (f"eominer-store:{url}", "eominer-store:"):
            store = pn.state.cache.pop(key, None)
            if store is not None:
                store.close()
