"""What the compute tests check in a store (shared by test_extract and test_runtime)."""

from __future__ import annotations


def nothing_written(store) -> bool:
    return not store.feature_sets() and store.query("SELECT COUNT(*) FROM jobs")[0][0] == 0
