"""eominer.ui.app without a browser (test_app.py drives the whole app in Chromium)."""

from __future__ import annotations

from eominer.store.base import utcnow


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
    from eominer.store import open_store
    from eominer.ui.app import App

    url = f"duckdb:///{tmp_path / 'db.duckdb'}"
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
    assert app.scope.jobs._stopped.value == ("extract-x", "eominer extract --features spectral")
