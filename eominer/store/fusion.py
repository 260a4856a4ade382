"""SQL for S1/S2 fusion (pairs of products and patches)."""

from __future__ import annotations

from eominer.store.base import StoreBase


class FusionMixin(StoreBase):
    """Filled in by the fusion issue."""
