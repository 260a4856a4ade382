"""eominer.ui.app without a browser (test_app.py drives the whole app in Chromium)."""

from __future__ import annotations


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
