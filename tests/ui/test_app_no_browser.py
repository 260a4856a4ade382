"""eominer.ui.app without a browser (test_app.py drives the whole app in Chromium)."""

from __future__ import annotations


def test_app_says_so_when_a_batch_job_holds_the_database(tmp_path):
    """DuckDB has one writer per file: while another process holds it, the app shows a
    page saying what is wrong and what to do, instead of failing."""
    import subprocess
    import sys

    from eominer.ui.app import App

    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        app = App(db=f"duckdb:///{db}")
        assert app.error is not None
        assert "holds it for writing; wait for it to finish" in app.error
        page = app.__panel__()
        alert = page.objects[0]
        assert "The database cannot be opened" in alert.object
        assert "Nothing you labelled is lost" in alert.object
    finally:
        holder.kill()
        holder.wait()
