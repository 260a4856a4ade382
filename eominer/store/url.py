"""Database URLs: `duckdb:///path/file.duckdb`, `monetdb://user:password@host:port/db`,
and `monetdbe:///path/dir` (MonetDB's embedded engine, Python <= 3.10; tests only).
A bare path ending in `.duckdb` is a DuckDB file, as the duckdb shell takes it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from eominer.errors import ConfigError

FORMS = (
    "duckdb:///path/file.duckdb, monetdb://user:password@host:50000/database "
    "or monetdbe:///path/folder"
)


@dataclass(frozen=True)
class DatabaseURL:
    engine: str
    path: str | None = None
    host: str | None = None
    port: int = 50000
    database: str | None = None
    user: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        if self.engine == "monetdb":
            return f"monetdb://{self.user}:***@{self.host}:{self.port}/{self.database}"
        return f"{self.engine}://{'/' + self.path if self.path and self.path.startswith('/') else self.path or ''}"


def parse_url(url: str) -> DatabaseURL:
    if "://" not in url:
        if url.endswith(".duckdb"):
            return DatabaseURL("duckdb", path=os.path.abspath(os.path.expanduser(url)))
        raise ConfigError(f"database URL {url!r} has no scheme; expected {FORMS}")
    parts = urlparse(url)
    scheme = parts.scheme.lower()
    if scheme in ("duckdb", "monetdbe"):
        path = unquote(parts.netloc + parts.path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if not path or path in ("/", "/:memory:", ":memory:"):
            path = ":memory:" if scheme == "duckdb" else None
        return DatabaseURL(scheme, path=path)
    if scheme == "monetdb":
        if not parts.hostname or not parts.path.strip("/"):
            raise ConfigError(f"MonetDB URL {url!r} needs a host and a database; expected {FORMS}")
        return DatabaseURL(
            "monetdb", host=parts.hostname, port=parts.port or 50000,
            database=parts.path.strip("/"), user=unquote(parts.username or "monetdb"),
            password=unquote(parts.password or "monetdb"),
        )
    raise ConfigError(f"unknown database engine {scheme!r} in {url!r}; expected {FORMS}")
