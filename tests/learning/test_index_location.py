"""Where the nearest-neighbour indexes of a database live (eominer.learning.ann)."""

from __future__ import annotations

from pathlib import Path


def test_an_embedded_databases_indexes_live_beside_it(learn_store, monkeypatch, tmp_path):
    """A DuckDB file's or a monetdbe folder's: `<database>.indexes`, wherever
    $EOMINER_HOME points. A monetdbe database's were under $EOMINER_HOME/indexes, so a
    command run with another home found no index (tests/compute/test_index.py's search
    after its monkeypatch.undo() did, on monetdbe)."""
    from eominer.learning.ann import index_root
    from eominer.store.url import parse_url

    db = Path(parse_url(learn_store.url).path)
    assert db.exists() and index_root(learn_store) == db.with_suffix(".indexes")
    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "elsewhere"))
    assert index_root(learn_store) == db.with_suffix(".indexes")
