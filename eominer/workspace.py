"""Where eominer keeps its files: the default database, analysis-ready COGs, models, exports;
and who works in it when nobody logs in.

The workspace is `$EOMINER_HOME`, else `~/.eominer`. The default database is
`<workspace>/eominer.duckdb`; the database URL comes from `--db`, else `$EOMINER_DB`.
"""

from __future__ import annotations

import getpass
import itertools
import os
from collections.abc import Iterator
from pathlib import Path


def os_user() -> str:
    """The operating-system user: the app's user without a log-in and the CLI's default
    owner, so that a session made in one is the user's own in the other."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "analyst"


def workspace(create: bool = True) -> Path:
    root = Path(os.environ.get("EOMINER_HOME") or Path.home() / ".eominer").expanduser()
    if create:
        for sub in ("ard", "models", "exports", "layers"):
            (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def default_db_url() -> str:
    return os.environ.get("EOMINER_DB") or f"duckdb:///{workspace() / 'eominer.duckdb'}"


def staged(dest: Path) -> Path:
    """Where `dest` is written before its row commits and it is renamed into place: a
    hidden name beside it that keeps the suffix (Keras chooses the format by it)."""
    return dest.with_name(f".{dest.stem}.staged{dest.suffix}")


def _candidates(path: Path) -> Iterator[Path]:
    yield path
    for n in itertools.count(2):
        yield path.with_name(f"{path.stem}-{n}{path.suffix}")


def unclaimed(path: Path) -> Path:
    """`path`, or `<stem>-2<suffix>`, `-3`, ...: the first name that no file holds, staged
    or in place. A new ARD or encoder file of one database must not replace a file that
    another database of the same workspace names: the same product ingested into both,
    or both databases' first encoder, `ssl-v1` (`products remove` in one would delete
    the other's ARD). The row records the path, so the name need not be predictable."""
    return next(p for p in _candidates(path) if not (p.exists() or staged(p).exists()))


def claim(path: Path) -> tuple[Path, Path]:
    """`unclaimed(path)` and its staged file, the staged file created empty in one step
    (O_EXCL): a writer of another database that looks at the same moment moves on to the
    next name instead of sharing this one. The caller writes the staged file, then
    renames it to the name once its row is committed, or unlinks it."""
    for p in _candidates(path):
        if p.exists():
            continue
        try:
            staged(p).touch(exist_ok=False)
        except FileExistsError:
            continue
        return p, staged(p)
    raise AssertionError("unreachable: the candidates never end")


def ard_dir() -> Path:
    return workspace() / "ard"


def models_dir() -> Path:
    return workspace() / "models"


def exports_dir() -> Path:
    return workspace() / "exports"


def layers_dir() -> Path:
    return workspace() / "layers"
