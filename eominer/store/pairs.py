"""SQL for the pairs tables (see eominer/store/schema.py)."""

from __future__ import annotations

from eominer.store.base import StoreBase


class PairsMixin(StoreBase):
    """Filled in by the issue that owns these tables."""
