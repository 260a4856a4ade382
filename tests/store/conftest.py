"""The store contract runs on every engine listed in EOMINER_TEST_ENGINES
(`duckdb` here; `monetdbe` in the Python 3.10 side environment), plus a live MonetDB
server when EOMINER_MONETDB_URL is set; the analyst's CLI flow on each embedded engine
is compared with DuckDB's (test_product_flow)."""

from __future__ import annotations

import os

import pytest

ENGINES = [e for e in os.environ.get("EOMINER_TEST_ENGINES", "duckdb").split(",") if e]
if os.environ.get("EOMINER_MONETDB_URL"):
    ENGINES.append("monetdb")


@pytest.fixture(params=ENGINES)
def store(request, tmp_path, monkeypatch):
    from eominer.store import open_store

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "ws"))
    url = {
        "duckdb": f"duckdb:///{tmp_path / 'contract.duckdb'}",
        "monetdbe": f"monetdbe:///{tmp_path / 'monetdbe'}",
        "monetdb": os.environ.get("EOMINER_MONETDB_URL", ""),
    }[request.param]
    s = open_store(url)
    yield s
    s.close()
