"""eominer.ui.sqlconsole on a real database, without a browser: the result, the info
line and the downloads always belong to the latest query."""

from __future__ import annotations

import asyncio
import html
import re

import pytest

from tests.conftest import LEARN_ENGINE

SLOW = ("SELECT COUNT(*) AS n FROM range(100000000) a, range(100000) b "
        "WHERE a.range + b.range = 7")
# MonetDB has no range(), and checks its timeout between the instructions of a plan:
# many short ones here, each the edit distance of ~2000-character strings for a few
# patches (100 of them: ~9 s on monetdbe here, in ~250 MB; a cross join as long takes
# gigabytes)
def slow_monetdb(parts: int = 100) -> str:
    return "SELECT MAX(d) AS n FROM (" + " UNION ALL ".join(
        "SELECT MAX(levenshtein(repeat('ab', 1000 + level), repeat('ba', 1000))) AS d "
        f"FROM patches WHERE patch_id % 400 = {k}" for k in range(parts)) + ") AS t"
# how each engine says that a table is missing
NO_TABLE = {"duckdb": "SQL error: Catalog Error: Table with name no_such_table",
            "monetdbe": "SQL error: SELECT: no such table 'no_such_table'"}


def console(store):
    from eominer.ui.sqlconsole import SQLConsole
    from eominer.ui.state import AppState

    return SQLConsole(state=AppState(store, user="ana"))


def info(c) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", c._info.object))


def test_an_error_clears_the_result_and_its_downloads(ui_store):
    c = console(ui_store)
    assert c._csv.disabled and c._parquet.disabled  # nothing to download yet
    c.run("SELECT product_id FROM products ORDER BY product_id")
    assert info(c) == "3 rows"
    assert len(c._table.value) == 3 and not c._csv.disabled and not c._parquet.disabled
    assert c._as_csv().read().decode().splitlines()[0] == '"product_id"'
    c.run("SELECT * FROM no_such_table")
    assert info(c).startswith(NO_TABLE[LEARN_ENGINE])
    assert c._table.value is None or len(c._table.value) == 0
    assert c._csv.disabled and c._parquet.disabled
    assert c._as_csv().read() == b""  # were it clicked anyway: not the old rows


def test_a_typo_is_a_syntax_error_and_a_write_is_refused(ui_store):
    c = console(ui_store)
    c.run("SELEC 1")
    assert info(c) == ("SQL syntax error: 'SELEC' does not start an SQL statement; a query "
                       "starts with SELECT, WITH, VALUES, FROM, DESCRIBE, SHOW or EXPLAIN")
    c.run("DELETE FROM labels")
    assert info(c).startswith("'DELETE' is not allowed here: the SQL console is read-only")


def test_the_cut_note_says_what_can_still_be_done(ui_store):
    c = console(ui_store)
    n = ui_store.query("SELECT COUNT(*) FROM patches")[0][0]
    assert 1001 <= n < 1_000_000 < n * n
    c.limit = 100
    c.run("SELECT patch_id FROM patches")
    assert info(c) == "100 rows (first 100 rows: raise the limit or add LIMIT/WHERE)"
    c.limit = c.param.limit.bounds[1]  # the most the console shows
    c.run("SELECT a.patch_id FROM patches a, patches b")
    assert info(c) == ("1000000 rows (first 1000000 rows, the most shown: add LIMIT or "
                       "WHERE)")
    assert "raise the limit" not in info(c)


@pytest.mark.skipif(LEARN_ENGINE == "monetdbe", reason="the button runs the query in a "
                    "worker thread: monetdbe answers only on the thread that opened it "
                    "(a MonetDB server's connection answers on any)")
def test_the_info_line_says_running_while_the_query_runs(ui_store):
    c = console(ui_store)
    c.run("SELECT 1 AS one")
    assert info(c) == "1 row"
    c.timeout_s = 2.0

    async def press_run() -> list[str]:
        seen = []
        task = asyncio.create_task(c._on_run(None))
        await asyncio.sleep(0.5)
        seen.append(info(c))
        await task
        seen.append(info(c))
        return seen

    c._editor.value = SLOW
    while_running, after = asyncio.run(press_run())
    assert while_running == "running…"
    assert after == "query cancelled after 2 s: narrow it with WHERE or LIMIT"


def test_a_slow_query_is_cancelled_at_its_timeout(ui_store):
    """On every engine: DuckDB is interrupted by a timer, MonetDB (which cannot be
    interrupted) ends it with its own query timeout, which is lifted after: the next
    query runs as usual, a long one too."""
    monetdb = ui_store.engine_name != "duckdb"
    c = console(ui_store)
    c.timeout_s = 2.0
    c.run(slow_monetdb() if monetdb else SLOW)
    assert info(c) == "query cancelled after 2 s: narrow it with WHERE or LIMIT"
    assert c._csv.disabled and c._result is None
    c.timeout_s = 60.0
    c.run("SELECT COUNT(*) AS n FROM products")
    assert info(c) == "1 row" and c._result.to_pylist() == [{"n": 3}]
    if monetdb:  # the query cancelled above, whole: the 2 s timeout no longer holds
        c.run(slow_monetdb())
        assert info(c) == "1 row" and c._result.to_pylist() == [{"n": 128}]


def test_the_example_runs_and_names_only_statements_this_engine_answers(ui_store):
    c = console(ui_store)
    example = c._editor.value
    c.run()  # the editor's own text, as a first click on Run
    assert re.fullmatch(r"\d+ rows?", info(c)), info(c)
    named = re.match(r"-- read-only: ([A-Z /]+)\.", example).group(1).split(" / ")
    assert named == (["SELECT", "WITH", "DESCRIBE", "SHOW"] if LEARN_ENGINE == "duckdb"
                     else ["SELECT", "WITH"])
    probes = {"SELECT": "SELECT 1 AS one", "WITH": "WITH t AS (SELECT 1 AS one) SELECT * FROM t",
              "DESCRIBE": "DESCRIBE products", "SHOW": "SHOW TABLES"}
    for word in named:
        c.run(probes[word])
        assert re.fullmatch(r"\d+ rows?", info(c)), (word, info(c))
