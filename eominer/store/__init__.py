"""The feature database: one interface, DuckDB (embedded default) or MonetDB.

    from eominer.store import open_store
    with open_store("duckdb:///tmp/x.duckdb") as store:
        store.products()

Importable on Python 3.10 (the monetdbe side environment runs its contract tests).
"""

from __future__ import annotations

from eominer.errors import StoreConnectionError
from eominer.store.archive import ArchiveMixin
from eominer.store.base import UserResult, check_read_only
from eominer.store.catalog import CatalogMixin
from eominer.store.engines import DuckDBEngine, Engine, MonetDBeEngine, MonetDBEngine
from eominer.store.features import FeatureSet, FeaturesMixin, feature_set_id
from eominer.store.fusion import FusionMixin
from eominer.store.jobs import JobsMixin
from eominer.store.pairs import PairsMixin
from eominer.store.records import (
    Label,
    PatchWindow,
    Product,
    RoundRecord,
    SessionParams,
    SessionRecord,
)
from eominer.store.removal import RemovalMixin
from eominer.store.scope import ScopeMixin
from eominer.store.sessions import SessionsMixin
from eominer.store.url import DatabaseURL, parse_url


class Store(CatalogMixin, RemovalMixin, FeaturesMixin, JobsMixin, SessionsMixin, PairsMixin,
            ArchiveMixin, FusionMixin, ScopeMixin):
    """The feature database. Open it with `open_store`; use it as a context manager.

    The type of every `store` parameter in eominer (import it under `TYPE_CHECKING`
    where a runtime import would be a cycle)."""

    def __enter__(self) -> Store:
        return self


def open_store(url: str | None = None, *, read_only: bool = False, init: bool = True) -> Store:
    """Open the database at `url` (default: `$EOMINER_DB`, else the workspace DuckDB file)."""
    from pathlib import Path

    from eominer.workspace import default_db_url

    text = url or default_db_url()
    parsed = parse_url(text)
    engine: Engine
    if parsed.engine in ("duckdb", "monetdbe") and parsed.path and parsed.path != ":memory:":
        # the workspace's folder may not exist yet (monetdbe said only "Cannot add farm")
        Path(parsed.path).parent.mkdir(parents=True, exist_ok=True)
        if read_only and not Path(parsed.path).exists():
            raise StoreConnectionError(
                f"no database at {parsed.path}: ingest a product first (eominer ingest PATH)"
            )
    if parsed.engine == "duckdb":
        engine = DuckDBEngine(parsed.path or ":memory:", read_only=read_only)
    elif parsed.engine == "monetdbe":
        engine = MonetDBeEngine(parsed.path)
    else:
        engine = MonetDBEngine(
            parsed.host or "", parsed.port, parsed.database or "", parsed.user or "",
            parsed.password or "",
        )
    store = Store(engine, str(parsed))
    if init and not read_only:
        store.init_schema()
    return store


__all__ = [
    "DatabaseURL", "FeatureSet", "Label", "PatchWindow", "Product", "RoundRecord",
    "SessionParams", "SessionRecord", "Store", "UserResult", "check_read_only",
    "feature_set_id", "open_store", "parse_url",
]
