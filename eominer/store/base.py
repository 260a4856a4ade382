"""Engine-neutral store operations: schema, transactions, bulk loads, user SQL."""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pyarrow as pa

from eominer import __version__
from eominer.errors import ReadOnlySQLError, SchemaVersionError, UserSQLError
from eominer.store.engines import Engine
from eominer.store.schema import (
    DATA_MIGRATIONS,
    INDEXES,
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    VIEWS,
)

T = TypeVar("T")

# Statements a user may run from `eominer sql` and the app's console.
_READ_ONLY_KEYWORDS = ("select", "with", "values", "from", "describe", "show", "explain", "summarize")
# Other statements of DuckDB and MonetDB: refused as writes. Any other first word is not
# SQL at all, and is reported as a syntax error (a typo is not a permission problem).
_OTHER_STATEMENTS = frozenset((
    "insert", "update", "delete", "merge", "upsert", "replace", "copy", "attach", "detach",
    "drop", "create", "alter", "truncate", "install", "load", "set", "reset", "pragma",
    "call", "export", "import", "checkpoint", "force", "vacuum", "analyze", "grant",
    "revoke", "begin", "start", "commit", "end", "rollback", "abort", "savepoint",
    "release", "use", "prepare", "execute", "exec", "deallocate", "comment", "declare",
    "table", "pivot", "unpivot", "trace", "plan", "debug", "lock", "unlock",
))


@contextlib.contextmanager
def ctrl_c_after() -> Iterator[None]:
    """A Ctrl-C (or a SIGTERM the CLI takes as one) during the block is held until the
    block ends, then delivered (to the handler that was there). A SIGINT that lands inside
    DuckDB comes out as DuckDB's own error ("Query interrupted", or one wrapping
    KeyboardInterrupt) and no longer reads as Ctrl-C: the job would end with a traceback
    instead of "re-run to resume". Only the main thread gets signals, and only a
    Python-level handler can be held and replayed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {n: h for n in (signal.SIGINT, signal.SIGTERM)
            if callable(h := signal.getsignal(n))}
    came: list[tuple[int, Any]] = []
    for n in held:
        signal.signal(n, lambda signum, frame: came.append((signum, frame)))
    try:
        yield
    finally:
        for n, h in held.items():
            signal.signal(n, h)
        if came:
            held[came[0][0]](*came[0])


def _ctrl_c_cancels(run: Callable[[], T], cancel: Callable[[], None]) -> T:
    """`run()`; on the main thread it runs on a helper thread while this one waits, so
    that a Ctrl-C reaches Python at once: `cancel()`, then KeyboardInterrupt. Left on the
    main thread, DuckDB looks at signals only now and then: Ctrl-C on `eominer sql`
    often waited for the query's timeout. (Not for monetdbe: it answers only on the
    thread that opened it.)"""
    if threading.current_thread() is not threading.main_thread():
        return run()
    with concurrent.futures.ThreadPoolExecutor(1, "eominer-query") as pool:
        future = pool.submit(run)
        try:
            return future.result()
        except KeyboardInterrupt:
            cancel()  # the pool's exit waits for the query to stop
            raise


def utcnow() -> dt.datetime:
    """Naive UTC: both engines store TIMESTAMP without zone."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class StoreBase:
    """Generic operations; domain mixins (catalog, features, ...) build on these."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._tx_depth = 0
        self._tx_lock = threading.RLock()

    # ---- lifecycle -------------------------------------------------------------
    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    @property
    def engine_name(self) -> str:
        return self.engine.name

    # ---- schema ----------------------------------------------------------------
    def init_schema(self) -> None:
        """Create missing tables; upgrade an older schema in place (MIGRATIONS, in the same
        transaction as the new schema_version row); refuse a newer one."""
        existing = self.engine.table_names()
        found = None
        if "schema_version" in existing:
            rows = self.query("SELECT MAX(version) FROM schema_version")
            found = rows[0][0] if rows else None
            if found is not None and found > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database {self.url} has schema version {found}, this eominer "
                    f"({__version__}) knows up to {SCHEMA_VERSION}: upgrade eominer"
                )
        with self.transaction():
            for name, ddl in TABLES.items():
                if name not in existing:
                    self.execute(ddl)
            if "patches" not in existing:
                for ddl in INDEXES:
                    self.execute(ddl)
            if found is not None and found < SCHEMA_VERSION:
                for version in range(int(found) + 1, SCHEMA_VERSION + 1):
                    for ddl in MIGRATIONS.get(version, ()):
                        if self._adds_a_column(ddl):
                            self.execute(ddl)
                    if version in DATA_MIGRATIONS:
                        getattr(self, DATA_MIGRATIONS[version])()
            for name, ddl in VIEWS.items():  # after the migrations: they name new columns
                if name not in existing:
                    self.execute(ddl)
            if found is None or found < SCHEMA_VERSION:
                self.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (SCHEMA_VERSION, __version__, utcnow()),
                )
            here = self.file_path()
            if here is not None and [r[0] for r in self._path_rows()[-1:]] != [here]:
                self.execute("INSERT INTO database_paths VALUES (?, ?)", (here, utcnow()))

    def _adds_a_column(self, ddl: str) -> bool:
        """An `ALTER TABLE t ADD COLUMN c ...` migration has work to do: `t` was made
        above with today's columns when it was missing (a table added by a later version
        than the database's), and so has `c`."""
        table, column = ddl.split()[2], ddl.split()[5]
        names = self.query_arrow(f"SELECT * FROM {table} WHERE 1 = 0").column_names
        return column not in names

    # ---- where the file has been -------------------------------------------------
    def file_path(self) -> str | None:
        """The database's file (DuckDB) or folder (monetdbe), resolved; None for a server
        or an in-memory database."""
        from eominer.store.url import parse_url

        url = parse_url(self.url)
        if url.engine == "monetdb" or not url.path or url.path == ":memory:":
            return None
        return os.path.realpath(url.path)

    def _path_rows(self) -> list[tuple[str, dt.datetime]]:
        """`database_paths` oldest first: (path, since)."""
        return [tuple(r) for r in self.query(
            "SELECT path, since FROM database_paths ORDER BY since, path")]

    def copied_from(self) -> tuple[str, dt.datetime] | None:
        """(the original, since when) if this database is a copy of another that still
        exists: the files its rows named before that moment (ARD COGs, change layers) are
        the original's too, so it must neither delete nor rewrite them. A database that was
        moved, or whose original is gone, owns its files: None. A path that is this very
        file (a second mount, a hard link: the same device and inode) is no original."""
        here = self.file_path()
        rows = self._path_rows()
        if here is None or not rows:
            return None
        if rows[-1][0] != here:  # opened without writing (read-only): as of now
            rows.append((here, utcnow()))
        for (path, _), (_, since) in reversed(list(zip(rows, rows[1:]))):
            if path != here and os.path.exists(path) and not _same_file(path, here):
                return path, since
        return None

    def has_table(self, name: str) -> bool:
        return name.lower() in self.engine.table_names()

    # ---- statements ------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.engine.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.engine.query(sql, params)

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        return self.engine.query_arrow(sql, params)

    def query_batches(self, sql: str, params: Sequence[Any] = (), rows: int = 65536,
                      memory_limit: str | None = None, ordered: bool = True,
                      ) -> Iterator[pa.RecordBatch]:
        """The result as Arrow record batches (streamed on DuckDB, its buffer pool capped
        at `memory_limit` meanwhile): consume them all."""
        return self.engine.query_batches(sql, params, rows, memory_limit, ordered)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested calls join the outer transaction. A Ctrl-C meanwhile
        takes effect once the outer one has committed (`ctrl_c_after`)."""
        with self._tx_lock, self.engine.lock, \
                (ctrl_c_after() if self._tx_depth == 0 else contextlib.nullcontext()):
            outer = self._tx_depth == 0
            if outer:
                self.engine.begin()
            self._tx_depth += 1
            try:
                yield
            except BaseException:
                self._tx_depth -= 1
                if outer:
                    self.engine.rollback()
                raise
            else:
                self._tx_depth -= 1
                if outer:
                    self.engine.commit()

    # ---- bulk ------------------------------------------------------------------
    def insert_arrow(self, table: str, data: pa.Table) -> int:
        """Append rows in bulk (columnar; never row by row for numeric data)."""
        if data.num_rows:
            self.engine.append_arrow(table, data)
        return data.num_rows

    def upsert_arrow(self, table: str, data: pa.Table, keys: Sequence[str],
                     insert: bool = True) -> int:
        """Insert or replace rows by key: staged in bulk, then one portable MERGE.
        `insert=False` only updates the rows that exist (the columns given)."""
        if not data.num_rows:
            return 0
        stage = f"stage_{table}"
        cols = data.column_names
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        sets = ", ".join(f"{c} = s.{c}" for c in cols if c not in keys)
        merge = (
            f"MERGE INTO {table} t USING {stage} s ON {on} "
            + (f"WHEN MATCHED THEN UPDATE SET {sets} " if sets else "")
            + (f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) "
               f"VALUES ({', '.join('s.' + c for c in cols)})" if insert else "")
        )
        with self.transaction():
            if self.engine.name == "duckdb":
                self.engine.register(stage, data)  # type: ignore[attr-defined]
                try:
                    self.execute(merge)
                finally:
                    self.engine.unregister(stage)  # type: ignore[attr-defined]
            else:
                self.execute(
                    f"CREATE LOCAL TEMPORARY TABLE {stage} AS SELECT {', '.join(cols)} "
                    f"FROM {table} WITH NO DATA ON COMMIT PRESERVE ROWS"
                )
                try:
                    self.engine.append_arrow(f"tmp.{stage}", data)
                    self.execute(merge)
                finally:
                    self.execute(f"DROP TABLE {stage}")
        return data.num_rows

    # ---- user SQL ----------------------------------------------------------------
    def user_query(self, sql: str, limit: int = 10_000, timeout_s: float = 30.0) -> UserResult:
        """Run SQL typed by a user: one read-only statement, at most `limit` rows,
        cancelled after `timeout_s`. Nothing it does can change the database."""
        text = check_read_only(sql)
        wrapped = _wrappable(text)
        try:
            try:
                table = self.read_only_arrow(
                    f"SELECT * FROM ({text}) AS user_query LIMIT {int(limit) + 1}"
                    if wrapped else text, (), timeout_s)
            except UserSQLError as exc:
                if not (wrapped and SYNTAX_ERROR.search(str(exc))):
                    raise
                # the row limit's wrapper is then in the message ("near ')'", "in: select *
                # from (..."), which the user never typed: their own text alone says where
                # their error is (a parse error runs nothing), or runs if the wrapper was it
                table = self.read_only_arrow(text, (), timeout_s)
        except UserSQLError as exc:
            missing = "table" in str(exc).lower() and re.search(
                r"does not exist|no such|not found|unknown", str(exc), re.IGNORECASE)
            hint = self._feature_table_hint(text) if missing else None
            first = text.split(None, 1)[0].lower()
            if hint is None and self.engine.name != "duckdb" and first in DUCKDB_ONLY:
                hint = (f"{first.upper()} is DuckDB's; on MonetDB start with SELECT, e.g. "
                        "the columns of a table: SELECT c.name, c.type FROM sys.columns c "
                        "JOIN sys.tables t ON c.table_id = t.id WHERE t.name = 'products'")
            if hint:
                raise UserSQLError(f"{exc}; {hint}") from exc
            raise
        truncated = table.num_rows > limit
        return UserResult(table.slice(0, limit) if truncated else table, truncated, limit)

    def _feature_table_hint(self, text: str) -> str | None:
        """A query that names a feature set by its id or name where its table is meant
        (`extract` prints the id; the table is `fs_<id>`): which table to use."""
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text.lower()))
        named = [fs for fs in self.feature_sets() if fs.table_name.lower() not in words
                 and {fs.feature_set_id.lower(), fs.name.lower()} & words]
        if not named:
            return None
        return "feature sets are tables named fs_<id>: " + ", ".join(
            f"{fs.feature_set_id} is {fs.table_name}" for fs in named[:5])

    def read_only_arrow(self, text: str, params: Sequence[Any] = (),
                        timeout_s: float = 30.0) -> pa.Table:
        """The user-SQL path: `text` (already through `check_read_only`) runs on the
        engine's reader in a transaction that is rolled back, cancelled after `timeout_s`
        (DuckDB: interrupted from a timer; MonetDB: its own query timeout); DuckDB's reader
        cannot touch files. Errors become ReadOnlySQLError / UserSQLError."""
        timed_out = threading.Event()
        with self.engine.reader() as engine, engine.statement_timeout(timeout_s):

            def cancel() -> None:
                timed_out.set()
                engine.interrupt()

            timer = threading.Timer(timeout_s, cancel)
            engine.begin()
            timer.start()
            try:
                if type(engine).interrupt is Engine.interrupt:  # MonetDB: its own timeout
                    return engine.query_arrow(text, params)
                return _ctrl_c_cancels(lambda: engine.query_arrow(text, params), cancel)
            except Exception as exc:
                if timed_out.is_set() or _TIMED_OUT.search(str(exc)):
                    raise UserSQLError(
                        f"query cancelled after {timeout_s:g} s: narrow it with WHERE or LIMIT"
                    ) from exc
                if "permission" in str(exc).lower() or "file system" in str(exc).lower():
                    raise ReadOnlySQLError(
                        f"query tried to access local files, which the SQL console does not "
                        f"allow: {first_line(exc)}"
                    ) from exc
                raise UserSQLError(f"SQL error: {first_line(exc)}") from exc
            finally:
                timer.cancel()
                engine.rollback()


class UserResult:
    """Rows of a user query, and whether the row limit cut them."""

    def __init__(self, table: pa.Table, truncated: bool, limit: int) -> None:
        self.table = table
        self.truncated = truncated
        self.limit = limit


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _strip_comments(sql: str) -> str:
    lines = [ln.split("--", 1)[0] for ln in sql.splitlines()]
    return " ".join(lines).strip()


# how MonetDB says that its query timeout (`Engine.statement_timeout`) ended a statement
_TIMED_OUT = re.compile(r"aborted due to timeout", re.IGNORECASE)

# what starts a read-only query on DuckDB only (MonetDB says "syntax error" to them)
DUCKDB_ONLY = ("describe", "show", "summarize", "from")

# how DuckDB and MonetDB word a syntax error
SYNTAX_ERROR = re.compile(r"syntax error|parser error", re.IGNORECASE)


def _wrappable(sql: str) -> bool:
    return sql.split(None, 1)[0].lower() in ("select", "with", "values", "from")


def check_read_only(sql: str) -> str:
    """Return the single statement in `sql`, or raise if it is not a read-only query."""
    text = _strip_comments(sql).rstrip("; \n\t")
    if not text:
        raise UserSQLError("empty query: type a SELECT statement")
    if ";" in _strip_strings(text):
        raise ReadOnlySQLError("one statement at a time: remove the ';' between statements")
    first = text.split(None, 1)[0].lower()
    word = first.lstrip("(")
    if word not in _READ_ONLY_KEYWORDS and word not in _OTHER_STATEMENTS:
        raise UserSQLError(
            f"SQL syntax error: {first.upper()!r} does not start an SQL statement; a query "
            "starts with SELECT, WITH, VALUES, FROM, DESCRIBE, SHOW or EXPLAIN"
        )
    if first not in _READ_ONLY_KEYWORDS:
        raise ReadOnlySQLError(
            f"'{first.upper()}' is not allowed here: the SQL console is read-only "
            "(SELECT, WITH, DESCRIBE, SHOW, EXPLAIN); data changes go through eominer commands"
        )
    words = {w.lower() for w in _strip_strings(text).replace("(", " ").replace(")", " ").split()}
    bad = sorted(words & {"insert", "update", "delete", "merge", "copy", "attach", "drop",
                          "create", "alter", "truncate"})
    if bad:
        raise ReadOnlySQLError(
            f"'{bad[0].upper()}' is not allowed here: the SQL console is read-only"
        )
    # DuckDB has file access off for the whole database; MonetDB reads files with these
    files = sorted({w.rpartition(".")[2] for w in words} & _FILE_FUNCTIONS)
    if files:
        raise ReadOnlySQLError(
            f"query tried to access local files ({files[0]}), which the SQL console does "
            "not allow: query the tables of docs/schema.md"
        )
    return text


_FILE_FUNCTIONS = {"file_loader", "proto_loader", "read_csv", "read_csv_auto", "read_parquet",
                   "read_json", "read_json_auto", "read_text", "read_blob", "glob"}


def _strip_strings(sql: str) -> str:
    out, quote = [], None
    for ch in sql:
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
            continue
        out.append(ch)
    return "".join(out)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them vanished meanwhile
        return False
