"""The label taxonomy: a shipped two-level land-cover/land-use tree (CORINE-like),
extensible by users. A session's target concept must be a label of this tree."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any

from eominer.errors import SessionError

if TYPE_CHECKING:
    from eominer.store import Store

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


def shipped_taxonomy() -> list[dict[str, Any]]:
    """The rows of `eominer/taxonomy.json` with their level (1 = root, 2 = child)."""
    text = resources.files("eominer").joinpath("taxonomy.json").read_text(encoding="utf-8")
    rows = json.loads(text)["labels"]
    return [dict(r, level=1 if r["parent"] is None else 2, created_by="eominer") for r in rows]


def ensure_taxonomy(store: Store) -> None:
    """Install the shipped labels once (user-added labels are kept)."""
    have = {r["label_name"] for r in store.taxonomy()}
    missing = [r for r in shipped_taxonomy() if r["label_name"] not in have]
    if missing:
        store.put_taxonomy(missing)


def add_label(
    store: Store, name: str, parent: str | None, title: str, description: str = "",
    user: str = "user",
) -> dict[str, Any]:
    """Add a user label under `parent` (None for a new root). Names are snake_case."""
    ensure_taxonomy(store)
    if not _NAME.match(name):
        raise SessionError(
            f"label name {name!r} is not valid: expected snake_case letters, digits and '_' "
            "(2-64 characters, starting with a letter), e.g. 'flooded_field'"
        )
    if store.taxonomy_label(name) is not None:
        raise SessionError(f"label {name!r} already exists in the taxonomy: pick another name")
    level = 1
    if parent is not None:
        p = store.taxonomy_label(parent)
        if p is None:
            raise SessionError(f"parent label {parent!r} is not in the taxonomy: add it first")
        level = int(p["level"]) + 1
    row = {"label_name": name, "parent": parent, "level": level, "title": title,
           "description": description, "created_by": user}
    store.put_taxonomy([row])
    return row


def require_label(store: Store, name: str) -> dict[str, Any]:
    ensure_taxonomy(store)
    row = store.taxonomy_label(name)
    if row is None:
        names = [r["label_name"] for r in store.taxonomy() if r["level"] > 1]
        near = close_labels(name, names)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise SessionError(
            f"concept {name!r} is not in the taxonomy ({hint}known: {', '.join(names)}); "
            "add it with eominer.learning.taxonomy.add_label or `eominer session add-label`"
        )
    return row


def close_labels(name: str, names: list[str]) -> list[str]:
    """Labels that contain `name` ("water": inland_waters, marine_waters) or are spelt
    like it ("forests": forest), at most three."""
    import difflib

    key = name.strip().lower()
    inside = [n for n in names if key and key in n]
    return list(dict.fromkeys(inside + difflib.get_close_matches(key, names, 3)))[:3]
