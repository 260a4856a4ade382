from __future__ import annotations

import pytest

from eominer.errors import ConfigError, StoreConnectionError
from eominer.store import open_store, parse_url


def test_url_forms():
    assert parse_url("duckdb:////tmp/a/b.duckdb").path == "/tmp/a/b.duckdb"
    m = parse_url("monetdb://alice:s%40cret@db.local:50001/eo")
    assert (m.engine, m.user, m.password, m.host, m.port, m.database) == (
        "monetdb", "alice", "s@cret", "db.local", 50001, "eo")
    assert "s@cret" not in str(m)  # never print passwords


def test_a_bare_duckdb_path_is_a_duckdb_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_url("ws/eo.duckdb") == parse_url(f"duckdb:///{tmp_path}/ws/eo.duckdb")
    assert parse_url(str(tmp_path / "eo.duckdb")).path == str(tmp_path / "eo.duckdb")


@pytest.mark.parametrize("bad", ["postgres://x/y", "file.db", "monetdb://host"])
def test_bad_urls(bad):
    with pytest.raises(ConfigError, match="expected"):
        parse_url(bad)


def test_default_url_is_in_workspace(workspace):
    from eominer.workspace import default_db_url

    assert default_db_url() == f"duckdb:///{workspace / 'eominer.duckdb'}"


def test_unreachable_monetdb_is_a_clear_error():
    pytest.importorskip("pymonetdb", reason="pymonetdb lives in the main environment only")
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    with pytest.raises(StoreConnectionError, match="cannot reach MonetDB at 127.0.0.1:9/eo"):
        open_store("monetdb://u:p@127.0.0.1:9/eo")
