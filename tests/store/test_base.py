"""eominer.store.base, the contract every engine passes: schema, bulk load, upsert, read-only
user SQL, atomic transactions. Runs on DuckDB and on monetdbe (MonetDB)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from eominer.errors import ReadOnlySQLError, UserSQLError
from eominer.store.schema import SCHEMA_VERSION, TABLES
from tests.store.conftest import ENGINES
from tests.store.rows import patch_rows

N = 100_000


def test_schema_created_with_version(store):
    names = store.engine.table_names()
    assert set(TABLES) <= names
    assert store.query("SELECT version FROM schema_version")[0][0] == SCHEMA_VERSION
    store.init_schema()  # idempotent
    assert store.query("SELECT COUNT(*) FROM schema_version")[0][0] == 1


@pytest.mark.parametrize("engine", [e for e in ENGINES if e in ("duckdb", "monetdbe")])
def test_a_database_in_a_folder_not_made_yet(engine, tmp_path):
    """A new workspace's folder is made for either embedded engine (monetdbe said only
    "Cannot add farm ... (code -2)"); read-only, a database not there yet is said, not
    made."""
    from eominer.errors import StoreConnectionError
    from eominer.store import open_store

    path = tmp_path / "new" / "ws" / ("eominer.duckdb" if engine == "duckdb" else "monetdbe")
    with pytest.raises(StoreConnectionError, match="no database at .*: ingest a product"):
        open_store(f"{engine}:///{path}", read_only=True)
    assert not path.exists()
    with open_store(f"{engine}:///{path}") as store:
        assert store.query("SELECT MAX(version) FROM schema_version") == [(SCHEMA_VERSION,)]
    assert path.exists()


@pytest.mark.skipif("monetdbe" not in ENGINES, reason="monetdbe runs in the Python 3.10 "
                    "side environment (EOMINER_TEST_ENGINES=monetdbe)")
def test_a_monetdbe_database_open_in_another_process_is_said(tmp_path):
    """monetdbe serves one process: a second one (`eominer serve` while a command runs)
    is told why it cannot open the database and what to use instead, not only
    "GDKinit() failed"."""
    import subprocess
    import sys

    from eominer.store import open_store

    url = f"monetdbe:///{tmp_path / 'db'}"
    code = (f"from eominer.store import open_store\ntry:\n    open_store({url!r})\n"
            "except Exception as exc:\n    print(exc)")
    with open_store(url):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                             timeout=120).stdout
    assert f"cannot open monetdbe database {tmp_path / 'db'}" in out
    assert "another process may have it open" in out and "MonetDB server" in out


def test_bulk_load_100k_patches_and_read_back(store):
    t = patch_rows(N)
    assert store.insert_arrow("patches", t) == N
    assert store.query("SELECT COUNT(*), CAST(SUM(x_off) AS BIGINT) FROM patches")[0] == (N, int(t["x_off"].to_numpy().astype(np.int64).sum()))
    back = store.query_arrow("SELECT patch_id, min_x FROM patches ORDER BY patch_id")
    np.testing.assert_array_equal(back["patch_id"].to_numpy(), t["patch_id"].to_numpy())
    np.testing.assert_allclose(back["min_x"].to_numpy(), t["min_x"].to_numpy())


def test_upsert_generic_rows(store):
    rows = pa.table({"label_name": ["water", "forest"], "parent": [None, None],
                     "level": pa.array([1, 1], pa.int32()), "title": ["Water", "Forest"],
                     "description": ["", ""], "created_by": ["t", "t"]})
    store.upsert_arrow("taxonomy", rows, keys=["label_name"])
    store.upsert_arrow("taxonomy", rows.set_column(3, "title", pa.array(["Water bodies", "Forest"])),
                       keys=["label_name"])
    assert store.query("SELECT label_name, title FROM taxonomy ORDER BY label_name") == [
        ("forest", "Forest"), ("water", "Water bodies")]


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.insert_arrow("patches", patch_rows(10))
        raise RuntimeError("boom")
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 0


@pytest.fixture
def ctrl_c():
    """Python's own SIGINT handler, also where this suite runs with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_failed_statement_outside_a_transaction_leaves_the_store_usable(store):
    """Outside `transaction()` each statement is its own transaction on every engine:
    one that fails (a table another client dropped, a bad name) ends it. MonetDB, whose
    connections do not autocommit here, refused every later statement of the process
    ("Current transaction is aborted (please ROLLBACK)"): the app's, for all its users."""
    store.insert_arrow("patches", patch_rows(5))
    with pytest.raises(Exception, match="no_such_table"):
        store.query("SELECT * FROM no_such_table")
    assert store.query("SELECT COUNT(*) FROM patches") == [(5,)]
    with pytest.raises(Exception, match="no_such_table"):
        store.execute("DELETE FROM no_such_table")
    store.execute("INSERT INTO taxonomy (label_name, level, title) VALUES (?, ?, ?)",
                  ("water", 1, "Water"))
    with pytest.raises(Exception, match="no_such_table"):
        store.query_arrow("SELECT * FROM no_such_table")
    assert store.query_arrow("SELECT label_name, title FROM taxonomy").to_pylist() == [
        {"label_name": "water", "title": "Water"}]


def test_ctrl_c_in_a_transaction_lands_after_its_commit(store, ctrl_c):
    """CI once saw a Ctrl-C land inside DuckDB, in the schema read of an upsert's staged
    table: DuckDB raised its own error around the KeyboardInterrupt, and the job's Ctrl-C
    handling missed it. Held to the end of the transaction, it comes after the commit."""
    taxonomy = pa.table({"label_name": ["water"], "parent": [None],
                         "level": pa.array([1], pa.int32()), "title": ["Water"],
                         "description": [""], "created_by": ["t"]})
    with pytest.raises(KeyboardInterrupt), store.transaction():
        store.insert_arrow("patches", patch_rows(10))
        os.kill(os.getpid(), signal.SIGINT)
        with store.transaction():  # a nested one neither holds nor delivers it
            store.upsert_arrow("taxonomy", taxonomy, keys=["label_name"])
        assert store.query("SELECT COUNT(*) FROM taxonomy")[0][0] == 1
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 10
    assert store.query("SELECT label_name FROM taxonomy") == [("water",)]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt), store.transaction():  # a failure rolls back
        store.insert_arrow("patches", patch_rows(10, first=11))
        os.kill(os.getpid(), signal.SIGINT)
        raise RuntimeError("boom")
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 10


def test_read_only_user_sql(store):
    store.insert_arrow("patches", patch_rows(500))
    res = store.user_query("SELECT level, COUNT(*) AS n FROM patches GROUP BY level")
    assert res.table.to_pylist() == [{"level": 32, "n": 500}]
    res = store.user_query("SELECT patch_id FROM patches", limit=100)
    assert res.table.num_rows == 100 and res.truncated
    for bad in ("DELETE FROM patches", "DROP TABLE patches", "UPDATE patches SET level = 1",
                "SELECT 1; DELETE FROM patches", "INSERT INTO taxonomy VALUES ('a')"):
        with pytest.raises(ReadOnlySQLError, match=r"is not allowed here: the SQL console is "
                           r"read-only|one statement at a time"):
            store.user_query(bad)
    for files in ("SELECT * FROM file_loader('/etc/passwd')",
                  "SELECT * FROM sys.file_loader('/etc/passwd')",
                  "SELECT * FROM read_csv('/etc/passwd')"):
        with pytest.raises(ReadOnlySQLError, match="local files"):
            store.user_query(files)
    with pytest.raises(UserSQLError, match="SQL error"):
        store.user_query("SELECT no_such_column FROM patches")
    assert store.query("SELECT COUNT(*) FROM patches")[0][0] == 500


def test_user_sql_typo_is_a_syntax_error_not_a_refusal(store):
    """'SELEC 1' is a typo, not a write: it says so. Every statement that is not a query
    is still refused before it runs."""
    with pytest.raises(UserSQLError, match=r"SQL syntax error: 'SELEC' does not start an "
                       r"SQL statement; a query starts with SELECT"):
        store.user_query("SELEC 1")
    with pytest.raises(UserSQLError, match="SQL syntax error: 'FROBNICATE'"):
        store.user_query("-- a comment\nfrobnicate patches")
    for bad in ("INSTALL httpfs", "SET threads = 1", "PRAGMA version", "DETACH db",
                "(SELECT 1)"):
        with pytest.raises(ReadOnlySQLError, match="is not allowed here"):
            store.user_query(bad)
    assert store.user_query("select 1 AS one").table.to_pylist() == [{"one": 1}]



def test_a_process_that_only_reads_sees_what_another_one_commits(store):
    """The app between clicks only reads (its 3 s poll, the Scope tab) while the CLI
    writes. MonetDB keeps a transaction's snapshot, and with autocommit off a read began
    one that lasted until the next write: the app never saw the CLI's products or its
    jobs' progress. Every read outside a transaction now ends its own."""
    from eominer.store import open_store

    url = os.environ["EOMINER_MONETDB_URL"] if store.url.startswith("monetdb://") else store.url
    other = open_store(url)  # a second connection: another process, for the database
    try:
        other.execute("CREATE TABLE seen_by_readers (x INTEGER)")
        assert store.query("SELECT COUNT(*) FROM seen_by_readers")[0][0] == 0
        other.execute("INSERT INTO seen_by_readers VALUES (1)")
        assert store.query("SELECT COUNT(*) FROM seen_by_readers")[0][0] == 1
        for n in (2, 3):  # the Arrow path ends its read too
            other.execute("INSERT INTO seen_by_readers VALUES (?)", (n,))
            assert store.query_arrow("SELECT COUNT(*) AS n FROM seen_by_readers").column(
                "n").to_pylist() == [n]
        other.execute("DROP TABLE seen_by_readers")
    finally:
        other.close()


@pytest.mark.parametrize("query", ["DESCRIBE products", "SHOW TABLES",
                                   "FROM products", "SUMMARIZE products"])
def test_duckdbs_own_statements_say_what_monetdb_takes_instead(store, query):
    """The console's example and the docs offer DESCRIBE, SHOW and FROM-first queries,
    which are DuckDB's: on MonetDB the syntax error says so and gives the SELECT."""
    if store.engine_name == "duckdb":
        assert store.user_query(query).table.num_columns > 0  # it runs there
        return
    with pytest.raises(UserSQLError) as err:
        store.user_query(query)
    assert f"{query.split()[0]} is DuckDB's; on MonetDB start with SELECT" in str(err.value)
    hint = str(err.value).split("e.g. the columns of a table: ")[1]
    columns = store.user_query(hint).table.column("name").to_pylist()
    assert columns[:2] == ["product_id", "sensor"]


def test_a_syntax_error_quotes_the_users_text_not_the_row_limit(store):
    """The console runs a query inside `SELECT * FROM (...) LIMIT n`. A query that ends
    early ("... AND") made both engines point at that wrapper's ')', which the user never
    typed; the error now comes from their own text."""
    store.insert_arrow("patches", patch_rows(5))
    for bad, near in (("SELECT patch_id FROM patches WHERE level = 32 AND", "and"),
                      ("SELECT (patch_id FROM patches", "from")):
        with pytest.raises(UserSQLError, match="SQL error") as err:
            store.user_query(bad)
        msg = str(err.value)
        assert "select * from (" not in msg.lower() and "user_query" not in msg, msg
        assert near in msg.lower(), msg
        if near == "and":  # the user's query has no ')': none in the message either
            assert "')'" not in msg and '")"' not in msg, msg
    # a query the wrapper accepts is still limited by it
    res = store.user_query("SELECT patch_id FROM patches ORDER BY patch_id", limit=3)
    assert res.table.column("patch_id").to_pylist() == [1, 2, 3] and res.truncated

def test_a_feature_set_named_where_its_table_is_meant_gets_the_table_name(store):
    """`extract` prints the set's id; its table is fs_<id>. A query on the id or the name
    says which table to use; an unknown table that is no set gets no hint."""
    fs = store.register_feature_set("spectral", 1, {"probe": "hint"}, ["a", "b"], "S2")
    for typed in (fs.feature_set_id, "spectral", fs.feature_set_id.upper()):
        with pytest.raises(UserSQLError) as err:
            store.user_query(f"SELECT COUNT(*) FROM {typed}")
        assert f"{fs.feature_set_id} is {fs.table_name}" in str(err.value), str(err.value)
    with pytest.raises(UserSQLError) as err:
        store.user_query("SELECT COUNT(*) FROM no_such_table")
    assert "fs_<id>" not in str(err.value)
    assert store.user_query(f"SELECT COUNT(*) AS n FROM {fs.table_name}").table \
        .to_pylist() == [{"n": 0}]


def test_user_sql_is_cancelled_after_its_timeout(store):
    from eominer.store.engines import Engine

    if type(store.engine).interrupt is Engine.interrupt:
        pytest.skip("MonetDB's adapters cannot interrupt a statement from a timer: its own "
                    "query timeout ends user SQL there (tests/ui/test_sqlconsole.py, both "
                    "engines), and this slow query uses DuckDB's range()")
    store.insert_arrow("patches", patch_rows(500))
    slow = ("SELECT COUNT(*) AS n FROM range(100000000) a, range(100000) b "
            "WHERE a.range + b.range = 7")
    with pytest.raises(UserSQLError, match=r"cancelled after 0\.3 s: narrow it"):
        store.user_query(slow, timeout_s=0.3)
    # the connection is usable afterwards, and nothing changed
    assert store.user_query("SELECT COUNT(*) AS n FROM patches").table.to_pylist() == [{"n": 500}]


def test_ctrl_c_cancels_a_running_user_query(store, ctrl_c):
    """Ctrl-C on `eominer sql`: the query is cancelled and KeyboardInterrupt comes at
    once, not DuckDB's "Query interrupted" as an SQL error, nor the query's timeout."""
    import threading

    from eominer.store.engines import Engine

    if type(store.engine).interrupt is Engine.interrupt:
        pytest.skip("MonetDB's adapters cannot interrupt a running statement, so Ctrl-C "
                    "waits for it there (a MonetDB server ends it at the query timeout)")
    store.insert_arrow("patches", patch_rows(500))
    slow = ("SELECT COUNT(*) AS n FROM range(100000000) a, range(100000) b "
            "WHERE a.range + b.range = 7")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            store.user_query(slow, timeout_s=120)
    finally:
        timer.cancel()
    assert store.user_query("SELECT COUNT(*) AS n FROM patches").table.to_pylist() == [{"n": 500}]


def test_a_slow_user_query_does_not_hold_up_writes(store):
    """While one session's query runs (on a connection of its own), labels are written
    and read through the store: the app's other sessions do not wait for it."""
    import threading

    from eominer.store.engines import Engine

    if type(store.engine).reader is Engine.reader:
        pytest.skip("MonetDB runs user SQL on its one connection (DuckDB opens a reader of "
                    "its own): a slow query there holds writes up to its timeout")
    store.insert_arrow("patches", patch_rows(500))
    slow = ("SELECT COUNT(*) AS n FROM range(100000000) a, range(100000) b "
            "WHERE a.range + b.range = 7")
    started, outcome = threading.Event(), []

    def user() -> None:
        started.set()
        try:
            store.user_query(slow, timeout_s=5)
        except UserSQLError as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=user)
    t.start()
    started.wait()
    t.join(timeout=0.5)  # let the query get going
    with store.transaction():
        store.execute("INSERT INTO taxonomy (label_name, level, title) VALUES (?, ?, ?)",
                      ("water", 1, "Water"))
    assert store.query("SELECT title FROM taxonomy")[0][0] == "Water"
    assert t.is_alive()  # the write went through while the query was still running
    t.join()
    assert outcome and "cancelled after 5 s" in outcome[0]


def test_nulls_timestamps_and_quotes_survive_a_bulk_insert(store):
    """1,200 rows with NULL strings and timestamps: on MonetDB these go as multi-row
    INSERTs (500 rows a statement), so values, NULLs and quotes must all come back."""
    import datetime as dt

    n = 1200
    when = dt.datetime(2026, 11, 30, 12, 0, 1)
    store.insert_arrow("jobs", pa.table({
        "task_id": [f"t{i:04d}" for i in range(n)], "job_id": ["j"] * n, "kind": ["extract"] * n,
        "product_id": pa.array([None if i % 3 else "P" for i in range(n)], pa.string()),
        "feature_set_id": pa.nulls(n, pa.string()), "block": pa.array([1] * n, pa.int32()),
        "n_items": pa.array(range(n), pa.int32()), "status": ["pending"] * n,
        "attempts": pa.array([0] * n, pa.int32()),
        "error": pa.array(["it's 50% 'quoted' ?" if i % 2 else None for i in range(n)],
                          pa.string()),
        "worker": pa.nulls(n, pa.string()),
        "started": pa.array([when if i % 2 else None for i in range(n)], pa.timestamp("us")),
        "finished": pa.nulls(n, pa.timestamp("us")),
    }))
    row = store.query("SELECT COUNT(*), COUNT(product_id), COUNT(error), COUNT(started), "
                      "MAX(started), MIN(error), COUNT(worker), CAST(SUM(n_items) AS BIGINT) FROM jobs")[0]
    assert row == (n, 400, 600, 600, when, "it's 50% 'quoted' ?", 0, n * (n - 1) // 2)


def _make_v1(store) -> None:
    """Turn the fixture's database into one written by schema version 1 (the DDL of
    tests/store/schema_v1.py, a frozen copy of it) with one product and two patches."""
    from tests.store import schema_v1

    for name in store.engine.view_names():  # views first: MonetDB keeps dependencies
        store.execute(f"DROP VIEW {name}")
    for name in store.engine.table_names() - store.engine.view_names():
        store.execute(f"DROP TABLE {name}")
    for ddl in schema_v1.TABLES.values():
        store.execute(ddl)
    for ddl in schema_v1.INDEXES:
        store.execute(ddl)
    t0 = dt.datetime(2017, 2, 16, 10, 21, 1)
    store.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (1, "0.9.0", t0))
    store.execute(
        "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("OLD", "S2", "S2A", "L1C", "33UUU", t0, "EPSG:32633",
         "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", "/src/OLD", "/ard/OLD.tif", 64, 32,
         '["B04", "B08"]', "[10.0, 0.0, 0.0, 0.0, -10.0, 0.0]", "hOLD", t0))
    store.insert_arrow("patches", patch_rows(2, product="OLD"))


def test_version_1_database_is_upgraded_in_place(store):
    from eominer.store import open_store
    from eominer.store.records import Product
    from eominer.store.schema import PRODUCT_METADATA_COLUMNS

    _make_v1(store)
    url = store.url
    store.close()
    with open_store(url) as upgraded:  # init_schema migrates 1 -> 2 -> ... -> 13
        assert upgraded.query("SELECT version FROM schema_version ORDER BY version") == [
            (1,), (SCHEMA_VERSION,)]
        assert SCHEMA_VERSION == 13
        # version 7: where the file is opened; an upgraded database is nobody's copy
        here = upgraded.file_path()  # None for a MonetDB server: no row
        assert upgraded.query("SELECT path FROM database_paths") == ([(here,)] if here else [])
        assert upgraded.copied_from() is None
        assert upgraded.query(  # the view of version 4 sees the rows of version 1
            "SELECT COUNT(*), MIN(tile_id) FROM scope_rows WHERE cloud_mask IS NULL") == [
            (2, "33UUU")]
        old = upgraded.product("OLD")
        assert (old.tile_id, old.width, old.bands, old.n_patches) == ("33UUU", 64, ("B04", "B08"), 2)
        meta = [c for c, _ in PRODUCT_METADATA_COLUMNS]
        row = upgraded.query(f"SELECT {', '.join(meta)} FROM products WHERE product_id = 'OLD'")[0]
        assert all(v is None or v != v for v in row)  # NULL (MonetDB: NaN for DOUBLE)
        assert (old.processing_baseline, old.cloud_cover, old.relative_orbit,
                old.orbit_direction, old.reflectance_offsets, old.quantification) == (None,) * 6
        assert (old.cloud_mask, old.sun_zenith, old.sun_azimuth) == (None, None, None)
        # a new product fills the new columns
        upgraded.add_product(Product.create(
            product_id="NEW", sensor="S2", crs="EPSG:32633", footprint_wkt=old.footprint_wkt,
            source_path="/src/NEW", ard_path="/ard/NEW.tif", width=64, height=32,
            bands=["B04", "B08"], transform=old.transform, processing_baseline="05.09",
            cloud_cover=0.0874914150915226, relative_orbit=79, orbit_direction="ASCENDING",
            reflectance_offsets={"B04": -1000.0, "B08": -1000.0}, quantification=10000.0,
        ), patch_rows(0))
        new = upgraded.product("NEW")
        assert (new.processing_baseline, new.relative_orbit, new.orbit_direction) == (
            "05.09", 79, "ASCENDING")
        assert new.cloud_cover == pytest.approx(0.0874914150915226)
        assert new.reflectance_offsets == {"B04": -1000.0, "B08": -1000.0}
        assert new.quantification == 10000.0
        upgraded.init_schema()  # idempotent: nothing to migrate the second time
        assert upgraded.query("SELECT COUNT(*) FROM schema_version")[0][0] == 2


def _make_v2(store) -> None:
    """Turn the fixture's database into one written by schema version 2 (the DDL of
    tests/store/schema_v2.py, a frozen copy of it) with one S2 product that has its
    metadata, and two patches, one with a cloud fraction."""
    from tests.store import schema_v2

    for name in store.engine.view_names():  # views first: MonetDB keeps dependencies
        store.execute(f"DROP VIEW {name}")
    for name in store.engine.table_names() - store.engine.view_names():
        store.execute(f"DROP TABLE {name}")
    for ddl in schema_v2.TABLES.values():
        store.execute(ddl)
    for ddl in schema_v2.INDEXES:
        store.execute(ddl)
    t0 = dt.datetime(2023, 6, 1, 9, 45, 49)
    store.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (1, "0.9.0", t0))
    store.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (2, "0.1.0", t0))
    store.execute(
        "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?)",
        ("V2", "S2", "S2B", "L1C", "34UDD", t0, "EPSG:32634",
         "POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", "/src/V2", "/ard/V2.tif", 64, 32,
         '["B04", "B08"]', "[10.0, 0.0, 0.0, 0.0, -10.0, 0.0]", "hV2", t0, "05.09", 0.09,
         79, "DESCENDING", '{"B04": -1000.0, "B08": -1000.0}', 10000.0))
    rows = patch_rows(2, product="V2")
    store.insert_arrow("patches", rows.append_column(
        "cloud_fraction", pa.array([0.25, None], pa.float32())))


def test_version_2_database_is_upgraded_in_place(store):
    """A database written by schema version 2 gains the cloud columns (all NULL for what
    was there), keeps its rows, and takes new products and patches with masks."""
    from eominer.store import open_store
    from eominer.store.records import Product
    from eominer.store.schema import PATCH_MASK_COLUMNS, PRODUCT_CLOUD_COLUMNS

    _make_v2(store)
    url = store.url
    store.close()
    with open_store(url) as upgraded:  # init_schema migrates 2 -> 3 -> ... -> 6
        assert upgraded.query("SELECT version FROM schema_version ORDER BY version") == [
            (1,), (2,), (SCHEMA_VERSION,)]
        old = upgraded.product("V2")
        assert (old.processing_baseline, old.relative_orbit, old.n_patches) == ("05.09", 79, 2)
        assert (old.cloud_mask, old.sun_zenith, old.sun_azimuth) == (None, None, None)
        new_cols = [c for c, _ in PRODUCT_CLOUD_COLUMNS]
        row = upgraded.query(f"SELECT {', '.join(new_cols)} FROM products")[0]
        assert all(v is None or v != v for v in row)  # NULL (MonetDB: NaN for DOUBLE)
        fractions = ["cloud_fraction", *(c for c, _ in PATCH_MASK_COLUMNS)]
        got = upgraded.query(f"SELECT {', '.join(fractions)} FROM patches ORDER BY patch_id")
        assert [tuple(None if v is None or v != v else round(v, 6) for v in r) for r in got] \
            == [(0.25, None, None, None), (None, None, None, None)]
        upgraded.add_product(Product.create(
            product_id="NEW", sensor="S2", crs="EPSG:32634", footprint_wkt=old.footprint_wkt,
            source_path="/src/NEW", ard_path="/ard/NEW.tif", width=64, height=32,
            bands=["B04", "B08"], transform=old.transform, cloud_mask="MSK_CLASSI",
            sun_zenith=36.5, sun_azimuth=151.25,
        ), patch_rows(1, first=3, product="NEW").append_column(
            "shadow_fraction", pa.array([0.125], pa.float32())))
        new = upgraded.product("NEW")
        assert (new.cloud_mask, new.sun_zenith, new.sun_azimuth) == ("MSK_CLASSI", 36.5, 151.25)
        assert upgraded.query("SELECT shadow_fraction FROM patches WHERE product_id = 'NEW'") \
            == [(0.125,)]
        upgraded.init_schema()  # idempotent
        assert upgraded.query("SELECT COUNT(*) FROM schema_version")[0][0] == 3


def _make_v4(store) -> None:
    """Turn the fixture's database into one written by schema version 4 (the DDL of
    tests/store/schema_v4.py, a frozen copy of it) with a session and two rounds, the
    second with a precision estimate."""
    from tests.store import schema_v4
    from tests.store.rows import T0

    for name in store.engine.view_names():  # views first: MonetDB keeps dependencies
        store.execute(f"DROP VIEW {name}")
    for name in store.engine.table_names() - store.engine.view_names():
        store.execute(f"DROP TABLE {name}")
    for ddl in schema_v4.TABLES.values():
        store.execute(ddl)
    for ddl in schema_v4.INDEXES:
        store.execute(ddl)
    for ddl in schema_v4.VIEWS.values():
        store.execute(ddl)
    store.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (4, "0.1.0", T0))
    store.execute(
        "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("s4", "find s4", "ana", "lake", 32, '["P1"]', '["fsA"]', "sig", "logistic",
         "diverse", "{}", "open", T0, T0))
    for number, precision in ((1, None), (2, 0.75)):
        store.execute(
            "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("s4", number, "logistic", "diverse", '{"fitted": true}', 4, 1, 3, 0.5, None,
             precision, "[1, 2]", T0 + dt.timedelta(minutes=number)))


def test_version_4_database_is_upgraded_in_place(store):
    """A database written by schema version 4 gains the quality-check columns of rounds
    (NULL for the rounds it had), keeps its rounds, and stores a round's check."""
    from eominer.store import open_store
    from eominer.store.schema import ROUND_VERIFY_COLUMNS
    from eominer.store.sessions import VERIFY_COLUMNS

    _make_v4(store)
    url = store.url
    store.close()
    with open_store(url) as upgraded:  # init_schema migrates 4 -> 5 -> ... -> 13
        assert upgraded.query("SELECT version FROM schema_version ORDER BY version") == [
            (4,), (SCHEMA_VERSION,)]
        assert SCHEMA_VERSION == 13
        cols = [c for c, _ in ROUND_VERIFY_COLUMNS]
        rows = upgraded.query(f"SELECT {', '.join(cols)} FROM rounds ORDER BY round")
        assert [[v is None or v != v for v in r] for r in rows] == [[True] * len(cols)] * 2
        old = upgraded.session_rounds("s4")
        assert [(r.round, r.precision_estimate, r.recall_estimate, r.verified_n)
                for r in old] == [(1, None, None, None), (2, 0.75, None, None)]
        values = {"verify_threshold": 0.5, "precision_estimate": 0.625,
                  "precision_low": 0.375, "precision_high": 0.8125, "recall_estimate": 0.25,
                  "recall_low": 0.125, "recall_high": 0.5, "verified_n": 40,
                  "positives_estimate": 96.5}
        assert set(values) == set(VERIFY_COLUMNS)
        upgraded.set_round_verification("s4", 2, values)
        r1, r2 = upgraded.session_rounds("s4")
        assert r1.recall_estimate is None and r1.precision_estimate is None
        assert {k: getattr(r2, "precision_estimate" if k == "precision_estimate" else k)
                for k in values} == values
        # a check stored again replaces the first; what it leaves out becomes NULL
        upgraded.set_round_verification("s4", 2, {"precision_estimate": 0.5})
        r2 = upgraded.session_rounds("s4")[1]
        assert (r2.precision_estimate, r2.recall_estimate, r2.verified_n) == (0.5, None, None)
        with pytest.raises(ValueError, match="not a verification column of rounds"):
            upgraded.set_round_verification("s4", 2, {"n_labels": 3})
        upgraded.init_schema()  # idempotent
        assert upgraded.query("SELECT COUNT(*) FROM schema_version")[0][0] == 2


@contextlib.contextmanager
def reopened_as(store, version: int, *later_tables: str):
    """The fixture's database made one of schema `version` (today's less the tables added
    after it), closed and opened again: upgraded by `init_schema`."""
    from eominer.store import open_store
    from tests.store.rows import T0

    for table in later_tables:
        store.execute(f"DROP TABLE {table}")
    store.execute("DELETE FROM schema_version")
    store.execute("INSERT INTO schema_version VALUES (?, ?, ?)", (version, "0.1.0", T0))
    url = store.url
    store.close()
    with open_store(url) as upgraded:
        assert [v for (v,) in upgraded.query(
            "SELECT version FROM schema_version ORDER BY version")] == [version, SCHEMA_VERSION]
        yield upgraded


def test_version_7_database_gains_the_sources_its_sets_name(store):
    """A database of schema version 7 (today's less `feature_set_sources`) is upgraded
    with the products that its sets' params name: a change pair's two dates, a time
    series' grid; a set that names none, or a product not ingested, gets no row."""
    from tests.store.rows import T0, add_product

    for p, first in (("P1", 1), ("P2", 101)):
        add_product(store, p, T0, first)
    change = store.register_feature_set("change_cva", 1, {"first": "P1", "second": "P2"},
                                        ["p"], "S2")
    series = store.register_feature_set("temporal", 1, {"on": "P2", "products_sha": "x"},
                                        ["amp"], "S2")
    gone = store.register_feature_set("diff_tails", 1, {"first": "P1", "second": "P0"},
                                      ["t"], "S2")
    own = store.register_feature_set("spectral", 1, {"bands": ["B02"]}, ["a"], "S2")
    with reopened_as(store, 7, "feature_set_sources", "job_commands", "job_drivers") as upgraded:
        assert upgraded.feature_set_sources(change.feature_set_id) == ["P1", "P2"]
        assert upgraded.feature_set_sources(series.feature_set_id) == ["P2"]
        assert upgraded.feature_set_sources(gone.feature_set_id) == ["P1"]
        assert upgraded.feature_set_sources(own.feature_set_id) == []


def test_version_8_database_gains_the_commands_of_its_next_jobs(store):
    """A database of schema version 8 (today's less `job_commands`): its jobs keep their
    rows, have no command (none was recorded), and the next jobs' commands are kept."""
    store.schedule_tasks("extract-old", "extract", [{
        "task_id": "spectral/P/0-512", "product_id": "P", "feature_set_id": "spectral",
        "block": 0, "n_items": 10}])
    with reopened_as(store, 8, "job_commands", "job_drivers") as upgraded:
        assert upgraded.tasks("extract-old").num_rows == 1
        assert upgraded.job_command("extract-old") is None
        with upgraded.transaction():
            upgraded.record_job_command("extract-new", "eominer extract --features "
                                        "'spectral,gabor'", "/data/eo", "ana")
        assert upgraded.job_command("extract-new") == (
            "eominer extract --features 'spectral,gabor'", "/data/eo", "ana")


def test_version_9_database_gains_the_processes_of_its_next_jobs(store):
    """A database of schema version 9 (today's less `job_drivers`): a job of before at
    work has no process recorded (whether it lives is not known: never called killed);
    the next jobs' processes are kept."""
    from compute.runner import driver_gone

    store.schedule_tasks("extract-old", "extract", [{
        "task_id": "spectral/P/0-512", "product_id": "P", "feature_set_id": "spectral",
        "block": 0, "n_items": 10}])
    with reopened_as(store, 9, "job_drivers") as upgraded:
        (old,) = upgraded.unended_jobs()
        assert (old["job_id"], old["pending"], old["driver"]) == ("extract-old", 1, None)
        assert upgraded.job_driver("extract-old") is None and not driver_gone(None)
        with upgraded.transaction():
            upgraded.record_job_driver("extract-new", "node-7:4242")
        driver, since, seen = upgraded.job_driver("extract-new")
        assert driver == "node-7:4242" and since is not None and seen == since
        assert not driver_gone(driver, since, seen)  # another machine's, heard from now


def test_version_10_database_gains_when_its_next_jobs_processes_were_heard_from(store):
    """A database of schema version 10 (today's less `job_drivers.seen`): a job of before
    on another machine has no heartbeat (whether it lives is not known: never called
    killed); once its process says it lives, a silence of SILENT_AFTER_S reads killed."""
    from compute.runner import SILENT_AFTER_S, job_state, killed_how
    from eominer.store.base import utcnow

    store.schedule_tasks("extract-old", "extract", [{
        "task_id": "spectral/P/0-512", "product_id": "P", "feature_set_id": "spectral",
        "block": 0, "n_items": 10}])
    store.execute("ALTER TABLE job_drivers DROP COLUMN seen")
    store.execute("INSERT INTO job_drivers VALUES (?, ?, ?)",
                  ("extract-old", "node-7:4242", utcnow() - dt.timedelta(hours=2)))
    with reopened_as(store, 10) as upgraded:
        assert upgraded.job_driver("extract-old")[::2] == ("node-7:4242", None)
        (old,) = upgraded.unended_jobs()
        assert (old["driver_seen"], job_state(old)) == (None, "at work")
        upgraded.job_driver_lives("extract-old")
        (old,) = upgraded.unended_jobs()
        assert job_state(old) == "at work" and (utcnow() - old["driver_seen"]).seconds < 60
        quiet = utcnow() - dt.timedelta(seconds=SILENT_AFTER_S + 60)
        upgraded.execute("UPDATE job_drivers SET seen = ?", (quiet,))
        (old,) = upgraded.unended_jobs()
        assert job_state(old) == "killed"
        assert killed_how("node-7:4242", old["driver_seen"]) == (
            f"its process node-7:4242 has not said it lives since {quiet:%Y-%m-%d %H:%M:%S} "
            "UTC, 6 min ago: killed, or its machine is down or cut off")


@pytest.mark.skipif("duckdb" not in ENGINES, reason="a DuckDB file, copied with cp")
def test_a_copied_file_knows_its_original_and_a_moved_one_does_not(tmp_path):
    """`cp` of a DuckDB file: the copy names the original, and the moment it was first
    opened as a copy, while the original exists; moved (the old path gone), a database
    is nobody's copy; a copy of a copy names the nearest original that still exists."""
    import shutil

    from eominer.store import open_store

    a, b, c = (tmp_path / f"{n}.duckdb" for n in "abc")
    with open_store(f"duckdb:///{a}") as store:
        assert store.copied_from() is None and store.file_path() == str(a)
    shutil.copy(a, b)
    with open_store(f"duckdb:///{b}") as store:
        origin, since = store.copied_from()
        assert origin == str(a)
        assert store.query("SELECT path, since FROM database_paths ORDER BY since")[-1] == (
            str(b), since)
    with open_store(f"duckdb:///{b}") as store:  # opened again: no new row
        assert store.copied_from() == (str(a), since)
        assert len(store.query("SELECT * FROM database_paths")) == 2
    shutil.copy(b, c)
    with open_store(f"duckdb:///{c}") as store:
        assert store.copied_from()[0] == str(b)
    b.unlink()
    with open_store(f"duckdb:///{c}") as store:  # b gone: b's own original is still there
        assert store.copied_from() == (str(a), since)
    a.rename(tmp_path / "moved.duckdb")
    with open_store(f"duckdb:///{c}") as store:
        assert store.copied_from() is None
    with open_store(f"duckdb:///{tmp_path / 'moved.duckdb'}") as store:
        assert store.copied_from() is None
    # one file reached by a second path (a hard link here; a second mount of the same
    # file system is the same device and inode): not a copy, either way round
    os.link(tmp_path / "moved.duckdb", tmp_path / "linked.duckdb")
    with open_store(f"duckdb:///{tmp_path / 'linked.duckdb'}") as store:
        assert store.copied_from() is None
    with open_store(f"duckdb:///{tmp_path / 'moved.duckdb'}") as store:
        assert store.copied_from() is None
        assert [r[0] for r in store.query("SELECT path FROM database_paths ORDER BY since")
                ][-3:] == [str(tmp_path / n) for n in ("moved.duckdb", "linked.duckdb",
                                                       "moved.duckdb")]



def test_version_11_database_gains_the_archives_change_sets(store):
    """A database of schema version 11 has each change pair's own sets only: upgraded, the
    archive's sets (eominer.store.archive) hold every pair's rows, a first date of two
    pairs those of the pair recorded last, and the pairs' own sets are unchanged."""
    import numpy as np

    from tests.store.rows import T0, add_product

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("A1", "A2", "A3", "B1", "B2"))}
    for k, (first, second) in enumerate((("A1", "A2"), ("A1", "A3"), ("B1", "B2"))):
        own = store.register_feature_set("change_cva", 2, {"method": "cva", "first": first,
                                                           "second": second},
                                         ["change_prob_mean"], "S2", sources=(first, second))
        store.write_features(own, np.array(ids[first]), np.full((8, 1), k + 1.0, np.float32))
        pid = store.record_pair("change", first, second, method="cva",
                                params={"feature_set_id": own.feature_set_id})
        store.execute("UPDATE product_pairs SET created = ? WHERE pair_id = ?",
                      (T0 + dt.timedelta(hours=k), pid))
    assert not store.feature_sets("archive_change_cva")
    with reopened_as(store, 11) as upgraded:
        (archive,) = upgraded.feature_sets("archive_change_cva")
        assert archive.params == {"method": "cva"}
        values = dict(upgraded.query(
            f"SELECT p.product_id, MAX(f.change_prob_mean) FROM {archive.table_name} f "
            "JOIN patches p ON p.patch_id = f.patch_id GROUP BY p.product_id"))
        assert values == {"A1": 2.0, "B1": 3.0}  # A1 -> A3, recorded after A1 -> A2
        assert upgraded.count_features(archive) == 16
        assert sorted(upgraded.feature_set_sources(archive.feature_set_id)) == [
            "A1", "A3", "B1", "B2"]
        assert len(upgraded.feature_sets("change_cva")) == 3
        # and where each first date's rows come from (version 13)
        assert upgraded.row_sources(archive.feature_set_id) == {"A1": ("A3",), "B1": ("B2",)}


def test_version_12_database_records_where_its_kept_sets_rows_come_from(store):
    """A database of schema version 12 (today's less `feature_row_sources`): upgraded, the
    sets kept per product record what each product's rows were computed from, by the
    pairs that wrote them. An archive change set's first date: its pair recorded last
    (A1 -> A3, so removing A2 takes none of A1's rows); a `dates_` set's: that pair's
    second date; a fused set's S2 product: its S1 partners. Other sets record nothing."""
    import numpy as np

    from tests.store.rows import T0, add_product

    ids = {p: add_product(store, p, T0 + dt.timedelta(days=k), 1 + 100 * k)
           for k, p in enumerate(("A1", "A2", "A3", "F2", "Q1", "Q2"))}
    spectral = store.register_feature_set("spectral", 1, {}, ["a"], "S2")
    archive = store.register_feature_set("archive_change_cva", 2, {"method": "cva"},
                                         ["change_prob_mean"], "S2",
                                         sources=("A1", "A2", "A3"))
    dates = store.register_feature_set("dates_spectral", 1,
                                       {"source": spectral.feature_set_id},
                                       ["a_t1", "a_t2", "a_d"], "S2", sources=("A1", "A3"))
    fused = store.register_feature_set("fused_s1s2", 1, {"weights": [1, 1]}, ["f"],
                                       sensor="S1+S2", sources=("Q1", "Q2"))
    for k, later in enumerate(("A2", "A3")):
        own = store.register_feature_set("change_cva", 2, {"method": "cva", "first": "A1",
                                                           "second": later},
                                         ["change_prob_mean"], "S2", sources=("A1", later))
        store.write_features(own, np.array(ids["A1"]), np.full((8, 1), k + 1.0, np.float32))
        pid = store.record_pair("change", "A1", later, method="cva",
                                params={"feature_set_id": own.feature_set_id})
        store.execute("UPDATE product_pairs SET created = ? WHERE pair_id = ?",
                      (T0 + dt.timedelta(hours=k), pid))
    for fs, product, width in ((archive, "A1", 1), (dates, "A1", 3), (fused, "F2", 1),
                               (spectral, "A2", 1)):
        store.write_features(fs, np.array(ids[product]), np.ones((8, width), np.float32))
    for s1 in ("Q1", "Q2"):
        store.put_fusion_pair(f"F2~{s1}", "F2", s1, 1.0, 1.0, f"/layers/{s1}.tif", {})
    with reopened_as(store, 12, "feature_row_sources") as upgraded:
        assert upgraded.row_sources(archive.feature_set_id) == {"A1": ("A3",)}
        assert upgraded.row_sources(dates.feature_set_id) == {"A1": ("A3",)}
        assert upgraded.row_sources(fused.feature_set_id) == {"F2": ("Q1", "Q2")}
        assert upgraded.row_sources(spectral.feature_set_id) == {}
        assert {fs.feature_set_id: p for fs, p in upgraded.thinned_rows_from("A2")} == {
            archive.feature_set_id: ()}
        assert {fs.feature_set_id: p for fs, p in upgraded.thinned_rows_from("A3")} == {
            archive.feature_set_id: ("A1",), dates.feature_set_id: ("A1",)}
