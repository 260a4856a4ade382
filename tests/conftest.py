"""Shared fixtures: the real data folder and a fresh workspace per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
