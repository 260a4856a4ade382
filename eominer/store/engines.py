"""Engine adapters: the few places where DuckDB, MonetDB (pymonetdb) and monetdbe differ.

Everything above this module speaks `?` parameter markers and Arrow tables. Each adapter
opens its connection in `__init__` (called only from `open_store`), converts
parameter markers, bulk-loads columnar data and reads results as Arrow.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from eominer.errors import StoreConnectionError, StoreError, StoreWriteError

Params = Sequence[Any]
MONETDB_SCHEMA = "eominer"

# A '?' outside single-quoted strings and double-quoted identifiers.
_PLACEHOLDER_RE = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*")|\?""")


_PYFORMAT_RE = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\?|%""")


def qmark_to_pyformat(sql: str) -> str:
    """Rewrite `?` markers outside quotes as pymonetdb's `%s` and escape every literal `%`
    (pymonetdb %-formats the statement when, and only when, parameters are given)."""
    return _PYFORMAT_RE.sub(lambda m: "%s" if m.group(0) == "?" else m.group(0).replace("%", "%%"),
                            sql)


def _to_python(value: Any) -> Any:
    """numpy scalars are not DB-API parameters everywhere."""
    return value.item() if isinstance(value, np.generic) else value


class Engine(abc.ABC):
    """Interface of an engine adapter; see the concrete classes."""

    name = "abstract"
    lock: threading.RLock

    @abc.abstractmethod
    def execute(self, sql: str, params: Params = ()) -> None:
        """See the concrete adapters."""

    @abc.abstractmethod
    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        """See the concrete adapters."""

    @abc.abstractmethod
    def query_arrow(self, sql: str, params: Params = ()) -> pa.Table:
        """See the concrete adapters."""

    @abc.abstractmethod
    def append_arrow(self, table: str, data: pa.Table) -> None:
        """See the concrete adapters."""

    @abc.abstractmethod
    def begin(self) -> None:
        """See the concrete adapters."""

    @abc.abstractmethod
    def commit(self) -> None:
        """See the concrete adapters."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """See the concrete adapters."""

    @abc.abstractmethod
    def table_names(self) -> set[str]:
        """Names of eominer's tables and views (lower case)."""

    @abc.abstractmethod
    def view_names(self) -> set[str]:
        """Names of eominer's views (lower case)."""

    def query_batches(self, sql: str, params: Params = (), rows: int = 65536,
                      memory_limit: str | None = None, ordered: bool = True,
                      ) -> Iterator[pa.RecordBatch]:
        """The result as Arrow record batches of at most `rows` rows. Here the whole result
        is fetched first; DuckDB streams it (its override)."""
        yield from self.query_arrow(sql, params).to_batches(rows)

    def interrupt(self) -> None:
        """Cancel the running statement, where the engine can."""

    @contextlib.contextmanager
    def statement_timeout(self, seconds: float) -> Iterator[None]:
        """Meanwhile the engine itself ends a statement that runs longer than `seconds`,
        where it can (MonetDB); elsewhere a timer calls `interrupt` (DuckDB)."""
        yield

    @contextlib.contextmanager
    def reader(self) -> Iterator[Engine]:
        """Where one read-only user query runs: by default this connection, held under
        its lock for the query's whole run (other callers wait)."""
        with self.lock:
            yield self

    @abc.abstractmethod
    def close(self) -> None:
        """See the concrete adapters."""


class DuckDBEngine(Engine):
    """Embedded DuckDB, shared by processes one unit of work at a time.

    DuckDB lets one process open a database file for writing, and nobody else meanwhile.
    So that `eominer serve`, CLI commands and a batch job can share one workspace, each
    process holds the file only while it works: a statement, a transaction, a reader or a
    registered table. The file is released `linger` seconds after the last use (a burst
    of statements pays one open, ~15-20 ms), and an open that finds the file held retries
    with backoff for up to `wait` seconds before it tells the user who holds it. DuckDB's
    write-ahead log makes every commit durable and atomic, so a process killed while it
    holds the file loses only its uncommitted transaction.

    `:memory:` databases are private to the process: held for the engine's life.
    External file access is off for the whole connection: eominer reads rasters with
    rasterio and feeds DuckDB Arrow, so SQL never needs files."""

    name = "duckdb"
    linger = float(os.environ.get("EOMINER_DB_LINGER", "0.05"))  # seconds
    wait = float(os.environ.get("EOMINER_DB_WAIT", "120"))  # seconds

    def __init__(self, path: str, read_only: bool = False) -> None:
        import duckdb

        self._duckdb = duckdb
        self.path, self.read_only = path, read_only
        self.lock = threading.RLock()
        self._n = 0
        self._con: Any = None
        self._holds = 0  # statements, transactions, readers, registrations in progress
        self._last_use = 0.0
        self._timer: threading.Timer | None = None
        # the timer thread that last closed the connection: its frame still drops DuckDB's
        # connection object after the lock is released, and `close` waits for it
        self._closer: threading.Thread | None = None
        self._closed = False
        self.shared = path != ":memory:"
        self._opened = False
        with self._held():  # open now: a bad path or permission fails at once
            pass
        self._opened = True
        _OPEN_DUCKDB.add(self)

    # ---- the lease on the file --------------------------------------------------------
    def _open(self) -> Any:
        """Connect, retrying while another process holds the file."""
        if self._opened and self.shared and not os.path.exists(self.path):
            # connecting would create a new, empty database in its place
            raise StoreConnectionError(
                f"the database file {self.path} was deleted or moved while eominer was "
                "using it; put it back (or restart with --db pointing to where it is now)"
            )
        deadline = time.monotonic() + self.wait
        delay = 0.005
        while True:
            try:
                return self._duckdb.connect(self.path, read_only=self.read_only,
                                            config={"enable_external_access": False})
            except self._duckdb.IOException as exc:
                msg = str(exc)
                if "lock" not in msg.lower():
                    raise StoreConnectionError(
                        f"cannot open DuckDB database {self.path}: {msg}; check the path and "
                        "its permissions"
                    ) from exc
                if time.monotonic() + delay > deadline:
                    raise StoreConnectionError(
                        f"the database {self.path} stayed busy for {self.wait:.0f} s: {msg}. "
                        "Another eominer process (a long query, ingest or extract) holds it; "
                        "retry when it finishes, or wait longer with EOMINER_DB_WAIT=seconds"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    @property
    def con(self) -> Any:
        """The open connection (opened on demand; callers hold `lock` and a hold)."""
        if self._con is None:
            if self._closed:
                raise StoreConnectionError(f"the database {self.path} was closed")
            self._con = self._open()
        return self._con

    @contextlib.contextmanager
    def _held(self) -> Iterator[Any]:
        with self.lock:
            self._holds += 1
            try:
                yield self.con
            except self._duckdb.Error as exc:
                _raise_if_unwritable(exc, self.path)
                raise
            finally:
                self._release()

    def _hold(self) -> None:
        """Keep the file across calls (a transaction, a registered table)."""
        with self.lock:
            _ = self.con
            self._holds += 1

    def _release(self) -> None:
        with self.lock:
            self._holds -= 1
            self._last_use = time.monotonic()
            if self._holds == 0 and self.shared and self._timer is None \
                    and self._con is not None:
                self._timer = threading.Timer(self.linger, self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        """Close the connection once it has been idle for `linger` seconds."""
        with self.lock:
            if self._closed:  # close() closes the connection itself
                return
            self._timer = None
            if self._holds or self._con is None:
                return
            idle = time.monotonic() - self._last_use
            if idle < self.linger:
                self._timer = threading.Timer(self.linger - idle, self._expire)
                self._timer.daemon = True
                self._timer.start()
                return
            self._closer = threading.current_thread()
            con, self._con = self._con, None
            con.close()

    # ---- statements ---------------------------------------------------------------------
    def execute(self, sql: str, params: Params = ()) -> None:
        with self._held() as con:
            con.execute(sql, [_to_python(p) for p in params])

    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        with self._held() as con:
            return con.execute(sql, [_to_python(p) for p in params]).fetchall()

    def query_arrow(self, sql: str, params: Params = ()) -> pa.Table:
        with self._held() as con:
            rel = con.sql(sql, params=[_to_python(p) for p in params] or None)
            if rel is None:
                return pa.table({})
            fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
            return fetch()

    def query_batches(self, sql: str, params: Params = (), rows: int = 65536,
                      memory_limit: str | None = None, ordered: bool = True,
                      ) -> Iterator[pa.RecordBatch]:
        """The result streamed as Arrow record batches (never the whole result in memory);
        the file stays held, under the lock, until the iteration ends: consume it.
        `memory_limit` (e.g. '512MB') caps DuckDB's buffer pool meanwhile: a scan of a
        large table otherwise keeps its blocks cached, up to 80 % of the machine's RAM.
        `ordered=False`: the rows in no particular order (faster on a parallel scan)."""
        with self._held() as con:
            if memory_limit:
                con.execute("SET memory_limit = ?", [memory_limit])
            if not ordered:  # its threads hand over batches as they finish them
                con.execute("SET preserve_insertion_order = false")
            try:
                rel = con.sql(sql, params=[_to_python(p) for p in params] or None)
                if rel is not None:
                    yield from rel.to_arrow_reader(rows)
            finally:
                if memory_limit:
                    con.execute("RESET memory_limit")
                if not ordered:
                    con.execute("RESET preserve_insertion_order")

    def append_arrow(self, table: str, data: pa.Table) -> None:
        with self._held() as con:
            self._n += 1
            view = f"_eominer_bulk_{self._n}"
            con.register(view, data)
            try:
                cols = ", ".join(data.column_names)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {view}")
            finally:
                con.unregister(view)

    def register(self, name: str, data: pa.Table) -> None:
        """A view of `data` for later statements: the file is held until `unregister`."""
        with self.lock:
            self._hold()
            self.con.register(name, data)

    def unregister(self, name: str) -> None:
        with self.lock:
            self.con.unregister(name)
            self._release()

    def begin(self) -> None:
        with self.lock:
            self._hold()
            self.con.begin()

    def commit(self) -> None:
        with self.lock:
            try:
                self.con.commit()
            except self._duckdb.Error as exc:
                _raise_if_unwritable(exc, self.path)
                raise
            finally:
                self._release()

    def rollback(self) -> None:
        with self.lock:
            try:
                self.con.rollback()
            finally:
                self._release()

    def table_names(self) -> set[str]:
        rows = self.query("SELECT table_name FROM information_schema.tables")
        return {r[0].lower() for r in rows}

    def view_names(self) -> set[str]:
        rows = self.query("SELECT table_name FROM information_schema.tables "
                          "WHERE table_type = 'VIEW'")
        return {r[0].lower() for r in rows}

    def interrupt(self) -> None:
        con = self._con  # no lock: the statement to cancel holds it
        if con is not None:
            con.interrupt()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Engine]:
        """A connection of its own on the same database (DuckDB's `cursor()`: its own
        transaction, same settings, external access off): a slow user query then holds
        no lock, and the app's other sessions keep clicking while it runs. The file stays
        held until the reader is done."""
        with self.lock:  # the main connection is not thread-safe, even to branch off it
            self._hold()
            con = self.con.cursor()
        reader = DuckDBEngine.__new__(DuckDBEngine)
        reader._duckdb, reader._con, reader.lock, reader._n = (
            self._duckdb, con, threading.RLock(), 0)
        reader.path, reader.read_only, reader.shared = self.path, self.read_only, False
        reader._holds, reader._timer, reader._closed, reader._last_use = 0, None, False, 0.0
        reader._closer = None
        try:
            yield reader
        finally:
            con.close()
            self._release()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
        # joined outside the lock: a timer that already fired waits for the lock in
        # `_expire`, and joining it while holding the lock never returned
        if timer is not None and timer is not threading.current_thread():
            timer.join()
        with self.lock:
            closer, self._closer = self._closer, None
            if self._con is not None:
                con, self._con = self._con, None
                con.close()
        # a timer that closed the connection may still be dropping DuckDB's object; if the
        # interpreter exits meanwhile, that daemon thread is stopped inside DuckDB's C++
        # destructor and the process aborts ("terminate called ... FATAL: exception not
        # rethrown", exit code 134: one `eominer session export` in 5 to 60 here)
        if closer is not None and closer is not threading.current_thread():
            closer.join()


# every DuckDB engine not closed yet, closed at exit (a store a caller never closed, the
# app's): while atexit runs the interpreter still runs threads, so a linger timer that is
# releasing the file finishes; after it, one inside DuckDB's destructor aborts the exit
_OPEN_DUCKDB: weakref.WeakSet[DuckDBEngine] = weakref.WeakSet()


@atexit.register
def _close_at_exit(wait_s: float = 5.0) -> None:
    for engine in list(_OPEN_DUCKDB):
        # a daemon thread's statement that still holds the engine (a slow query of the
        # app's when it is stopped): leave it rather than hold up the exit until it ends
        if not engine.lock.acquire(timeout=wait_s):
            continue
        engine.lock.release()
        with contextlib.suppress(Exception):
            engine.close()


_UNWRITABLE = ("could not write", "no space left", "file too large", "disk quota")


def _raise_if_unwritable(exc: Exception, path: str) -> None:
    """A write the file system refused (disk full, quota, file size limit): say so. The
    transaction was not committed, so nothing of it is in the database."""
    msg = str(exc)
    if any(k in msg.lower() for k in _UNWRITABLE):
        raise StoreWriteError(
            f"the database {path} could not be written ({msg}); nothing of this change was "
            "saved. Free space on its disk (or raise the quota), then do it again"
        ) from exc


class _MonetBase(Engine):
    """What pymonetdb and monetdbe share: DB-API cursors, MonetDB's catalog and SQL."""

    paramstyle_qmark = True
    _in_tx = False  # inside begin() ... commit()/rollback(); else each statement commits

    def _sql(self, sql: str) -> str:
        return sql if self.paramstyle_qmark else qmark_to_pyformat(sql)

    def _bind(self, sql: str, params: Params) -> tuple[str, list[Any] | None]:
        values = [_to_python(p) for p in params]
        return (self._sql(sql), values) if values else (sql, None)

    def _run(self, cur: Any, sql: str, params: Params) -> None:
        try:
            cur.execute(*self._bind(sql, params))
        except Exception:
            # outside a transaction a statement that fails ends its own, as on DuckDB:
            # else the connection (autocommit off) refuses every later statement,
            # "Current transaction is aborted (please ROLLBACK)"
            if not self._in_tx:
                self.rollback()
            raise

    def execute(self, sql: str, params: Params = ()) -> None:
        with self.lock:
            cur = self.con.cursor()
            try:
                self._run(cur, sql, params)
            finally:
                cur.close()
            if not self._in_tx:  # outside a transaction every statement commits
                self.con.commit()

    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        with self.lock:
            cur = self.con.cursor()
            try:
                self._run(cur, sql, params)
                rows = [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()
            self._end_read()
            return rows

    def query_arrow(self, sql: str, params: Params = ()) -> pa.Table:
        with self.lock:
            cur = self.con.cursor()
            try:
                self._run(cur, sql, params)
                names = [d[0] for d in cur.description or []]
                rows = cur.fetchall()
            finally:
                cur.close()
            self._end_read()
        cols = list(zip(*rows)) if rows else [[] for _ in names]
        return pa.table({n: pa.array(list(c)) for n, c in zip(names, cols)})

    def _end_read(self) -> None:
        """Outside a transaction a read ends its own, as on DuckDB. With autocommit off it
        began one, and MonetDB keeps a transaction's snapshot: a process that only read
        (the app between clicks, its 3 s poll) never saw what others committed since."""
        if not self._in_tx:
            self.con.commit()

    def begin(self) -> None:
        self._in_tx = True

    def commit(self) -> None:
        self._in_tx = False
        self.con.commit()

    def _insert_values(self, table: str, data: pa.Table, rows_per_statement: int = 500,
                       ) -> None:
        """INSERT ... VALUES with many rows a statement: one round trip per
        `rows_per_statement` rows, for what the columnar paths refuse (NULL strings on
        monetdbe, timestamps in a binary COPY). All rows or none."""
        names = data.column_names
        head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "
        marks = "(" + ", ".join("?" for _ in names) + ")"
        rows = data.to_pylist()
        with self.lock:
            outer = not self._in_tx  # else the caller's transaction commits or rolls back
            self._in_tx = True  # no commit after each statement
            try:
                for part in iter_chunks(len(rows), rows_per_statement):
                    chunk = rows[part]
                    self.execute(head + ", ".join([marks] * len(chunk)),
                                 [r[c] for r in chunk for c in names])
            except BaseException:
                if outer:
                    self.rollback()
                raise
            if outer:
                self.commit()

    def rollback(self) -> None:
        self._in_tx = False
        self.con.rollback()

    def table_names(self) -> set[str]:
        rows = self.query(
            "SELECT t.name FROM sys.tables t JOIN sys.schemas s ON t.schema_id = s.id "
            "WHERE t.system = false AND s.name = ?", (MONETDB_SCHEMA,))
        return {r[0].lower() for r in rows}

    def view_names(self) -> set[str]:
        rows = self.query(
            "SELECT t.name FROM sys.tables t JOIN sys.schemas s ON t.schema_id = s.id "
            "WHERE t.system = false AND t.type = 1 AND s.name = ?", (MONETDB_SCHEMA,))
        return {r[0].lower() for r in rows}

    def _use_schema(self) -> None:
        """eominer's tables live in their own schema: MonetDB's `sys` already has a
        `sessions` view, and a team server should keep applications apart."""
        cur = self.con.cursor()
        try:
            cur.execute(
                "SELECT COUNT(*) FROM sys.schemas WHERE name = " + repr(MONETDB_SCHEMA))
            if not cur.fetchall()[0][0]:
                cur.execute(f"CREATE SCHEMA {MONETDB_SCHEMA}")
            cur.execute(f"SET SCHEMA {MONETDB_SCHEMA}")
        finally:
            cur.close()
        self.con.commit()

    @contextlib.contextmanager
    def statement_timeout(self, seconds: float) -> Iterator[None]:
        """MonetDB's session query timeout, in whole seconds (at least 1), checked
        between the instructions of a plan: a statement that runs longer ends with "Query
        aborted due to timeout" and aborts its transaction. These adapters cannot
        interrupt a statement, so this is what ends a slow user query; 0 (none, the
        default) again after."""
        with self.lock:
            self.execute("CALL sys.setquerytimeout(CAST(? AS INTEGER))",
                         (max(1, math.ceil(seconds)),))
            try:
                yield
            finally:
                self.execute("CALL sys.setquerytimeout(0)")

    def close(self) -> None:
        self.con.close()


class MonetDBeEngine(_MonetBase):
    """MonetDB's embedded engine (Python <= 3.10 wheels): the contract-test stand-in
    for a MonetDB server, running the same SQL."""

    name = "monetdbe"

    def __init__(self, path: str | None) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # monetdbe imports pkg_resources
            import monetdbe
        try:
            self.con = monetdbe.connect(path or ":memory:", autocommit=False)
        except Exception as exc:  # monetdbe raises its own DatabaseError family
            held = ("; another process may have it open: MonetDB's embedded engine serves "
                    "one process at a time, so for the app and the commands at once use a "
                    "MonetDB server (monetdb://...) or DuckDB"
                    if path and os.path.exists(path) else "")
            raise StoreConnectionError(
                f"cannot open monetdbe database {path}: {exc}{held}") from exc
        self.lock = threading.RLock()
        self._in_tx = False
        self._use_schema()

    def query_arrow(self, sql: str, params: Params = ()) -> pa.Table:
        with self.lock:
            cur = self.con.cursor()
            try:
                self._run(cur, sql, params)
                names = [d[0] for d in cur.description or []]
                if not names:
                    self._end_read()
                    return pa.table({})
                arrays = cur.fetchnumpy()
                # the arrays view the result's memory, which close() frees: copy first
                out = {}
                for n in names:
                    a = arrays[n]
                    data = np.array(np.ma.getdata(a))
                    mask = np.array(np.ma.getmaskarray(a))
                    if data.dtype.kind == "f":
                        # NaN is MonetDB's nil for floats, and fetchnumpy leaves it unmasked
                        mask |= np.isnan(data)
                    out[n] = pa.array(data, mask=mask) if mask.any() else pa.array(data)
            finally:
                cur.close()
            self._end_read()
        return pa.table(out)

    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        # NaN is MonetDB's nil for floats; monetdbe returns it as NaN, pymonetdb as None
        return [tuple(None if isinstance(v, float) and v != v else v for v in r)
                for r in super().query(sql, params)]

    def append_arrow(self, table: str, data: pa.Table) -> None:
        """monetdbe_append is MonetDB's columnar bulk path, but it refuses tables with keys
        and NULL strings: rows go to a keyless staging table, then INSERT ... SELECT."""
        schema, _, name = table.rpartition(".")
        names = data.column_names
        if any(data[c].null_count and (pa.types.is_string(data[c].type) or pa.types.is_null(data[c].type)
               or pa.types.is_timestamp(data[c].type)) for c in names):
            self._insert_values(table, data)  # the small catalogue tables
            return
        arrays = {c: _monetdbe_column(data[c]) for c in names}
        with self.lock:
            if schema == "tmp":  # already a keyless staging table
                self.con.append(name, arrays, schema="tmp")
            else:
                stage = "eominer_stage"
                self.execute(
                    f"CREATE LOCAL TEMPORARY TABLE {stage} AS SELECT {', '.join(names)} "
                    f"FROM {table} WITH NO DATA ON COMMIT PRESERVE ROWS")
                try:
                    self.con.append(stage, arrays, schema="tmp")
                    self.execute(f"INSERT INTO {table} ({', '.join(names)}) "
                                 f"SELECT {', '.join(names)} FROM tmp.{stage}")
                finally:
                    self.execute(f"DROP TABLE tmp.{stage}")
            if not self._in_tx:
                self.con.commit()

    def rollback(self) -> None:
        self._in_tx = False
        self.con.rollback()
        # monetdbe's wrapper then refuses every fetch ("state inconsistent", a leftover of
        # the sqlite test suite it mimics); ROLLBACK succeeded, so the session is clean.
        self.con.consistent = True

    def _run(self, cur: Any, sql: str, params: Params) -> None:
        try:
            super()._run(cur, sql, params)
        except KeyError as exc:  # the driver's table of result types has no entry
            raise StoreError(
                f"the result has a column of a type monetdbe's Python driver cannot return "
                f"(type code {exc.args[0]}; 5 is HUGEINT, which MonetDB gives a SUM over "
                "integers): CAST it, e.g. CAST(SUM(x) AS BIGINT)") from exc

    def _bind(self, sql: str, params: Params) -> tuple[str, list[Any] | None]:
        """monetdbe cannot bind None: such markers become the NULL literal. Nor a float
        where the statement types the marker REAL (against a REAL column, or `CAST(? AS
        REAL)`): it reads the double's bytes as a float (0.15 became 4.2e-08), so a float
        is bound as a DOUBLE and converted by the statement."""
        values = [_to_python(p) for p in params]
        if all(v is not None and not isinstance(v, float) for v in values):
            return sql, values or None
        it = iter(values)
        kept: list[Any] = []

        def swap(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(1)
            v = next(it)
            if v is None:
                return "NULL"
            kept.append(v)
            return "CAST(? AS DOUBLE)" if isinstance(v, float) else "?"

        return _PLACEHOLDER_RE.sub(swap, sql), kept or None


def _monetdbe_column(col: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as the numpy array monetdbe_append takes; NULLs become MonetDB's
    nil values (the type's minimum for integers, NaN for floats)."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return np.array(["" if v is None else v for v in col.to_pylist()], dtype=str)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return col.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False).astype("datetime64[ns]")
    if pa.types.is_boolean(t):
        return col.fill_null(False).to_numpy(zero_copy_only=False)
    if pa.types.is_null(t):
        return np.full(len(col), np.nan, np.float64)
    if pa.types.is_integer(t):
        nil = np.iinfo(t.to_pandas_dtype()).min
        return col.fill_null(nil).to_numpy(zero_copy_only=False)
    return col.to_numpy(zero_copy_only=False)


class MonetDBEngine(_MonetBase):
    """A MonetDB server through pymonetdb; bulk loads go through COPY BINARY ... ON CLIENT."""

    name = "monetdb"
    paramstyle_qmark = False

    def __init__(self, host: str, port: int, database: str, user: str, password: str) -> None:
        import pymonetdb

        try:
            self.con = pymonetdb.connect(
                hostname=host, port=port, database=database, username=user,
                password=password, autocommit=False, connect_timeout=10,
            )
        except Exception as exc:  # socket errors, auth errors: all mean "cannot reach it"
            raise StoreConnectionError(
                f"cannot reach MonetDB at {host}:{port}/{database} as {user}: {exc}; check "
                "that the server runs (monetdbd start, monetdb start DB) and the URL "
                "monetdb://user:password@host:port/database"
            ) from exc
        self.lock = threading.RLock()
        self._in_tx = False
        self._use_schema()
        self._uploads: dict[str, bytes] = {}
        self.con.set_uploader(_BytesUploader(self._uploads))

    def append_arrow(self, table: str, data: pa.Table) -> None:
        """COPY BINARY ... ON CLIENT: each column travels as one little-endian buffer
        (strings NUL-terminated), MonetDB's bulk path. Tables with timestamps (labels,
        annotations, the catalogue) go as multi-row INSERTs, 500 rows a round trip."""
        names = data.column_names
        if any(pa.types.is_timestamp(t) or pa.types.is_date(t) for t in data.schema.types):
            self._insert_values(table, data)
            return
        files = []
        with self.lock:
            for i, name in enumerate(names):
                key = f"eominer_col_{i}"
                self._uploads[key] = _binary_column(data[name])
                files.append(f"'{key}'")
            try:
                self.execute(
                    f"COPY LITTLE ENDIAN BINARY INTO {table} ({', '.join(names)}) "
                    f"FROM {', '.join(files)} ON CLIENT"
                )
            finally:
                self._uploads.clear()


def _binary_column(col: pa.ChunkedArray) -> bytes:
    """One column in MonetDB's binary COPY format; NULLs as MonetDB's nil values."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        nil = b"\x80"  # MonetDB's nil string in binary COPY (one byte, not UTF-8)
        values = [None if pa.types.is_null(t) else v for v in col.to_pylist()]
        return b"".join((nil if v is None else v.encode()) + b"\0" for v in values)
    if pa.types.is_boolean(t):
        return col.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()
    arr = _monetdbe_column(col)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


class _BytesUploader:
    """pymonetdb uploader serving in-memory column buffers to COPY ... ON CLIENT."""

    def __init__(self, buffers: dict[str, bytes]) -> None:
        self.buffers = buffers

    def handle_upload(self, upload: Any, filename: str, text_mode: bool, skip_amount: int) -> None:
        data = self.buffers.get(filename)
        if data is None:
            upload.send_error(f"no such upload: {filename}")
            return
        writer = upload.binary_writer()
        writer.write(data)


def iter_chunks(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
