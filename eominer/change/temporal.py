"""The `temporal` feature set: seasonal descriptors of a time stack of one place, stored
on the patches of one of its products.

A time stack is not one product, so this is not a registry descriptor (which maps one
product's bands to a vector): `store_temporal` takes the stack's index series and clear
mask on the product's 10 m grid, computes `eominer.change.timeseries.patch_descriptors`
for every patch window of the level (mean, trend, seasonal amplitude, peak day of year,
number of clear dates, reason code; NaN with a reason where the series is too short) and
writes them as the feature set `temporal` (TEMPORAL_VERSION, params naming the index,
the stack, its dates and the model) with `Store.write_features`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from eominer.change.timeseries import (
    HARMONICS,
    TEMPORAL_COLUMNS,
    day_numbers,
    patch_descriptors,
)
from eominer.errors import GridMismatchError, SessionError

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store

TEMPORAL_VERSION = 1
MIN_CLEAR_SHARE = 0.5


def store_temporal(store: Store, product_id: str, level: int, values: np.ndarray,
                   clear: np.ndarray, dates: Sequence[str], *, index: str, source: str,
                   mask: str) -> FeatureSet:
    """Descriptors of `values` (dates, rows, cols) on the product's patches at `level`;
    idempotent (the same stack gives the same feature set id, rows upserted)."""
    prod = store.product(product_id)
    if values.shape[1:] != (prod.height, prod.width) or clear.shape != values.shape:
        raise GridMismatchError(
            f"time stack {source} is {values.shape[2]} x {values.shape[1]} px (mask "
            f"{clear.shape}), product {product_id} {prod.width} x {prod.height}: the stack "
            "must be on the product's 10 m grid")
    t = store.patches(product_id, level)
    if t.num_rows == 0:
        raise SessionError(f"product {product_id} has no patches at level {level}: ingest it "
                           f"with `--levels {level}`")
    ids = t["patch_id"].to_numpy().astype(np.int64)
    x, y = t["x_off"].to_numpy(), t["y_off"].to_numpy()
    s = t["size_px"].to_numpy()
    X = patch_descriptors(values, clear, day_numbers(dates), x, y, s, MIN_CLEAR_SHARE)
    digest = hashlib.sha256("\n".join(map(str, dates)).encode()).hexdigest()[:12]
    fs = store.register_feature_set(
        "temporal", TEMPORAL_VERSION,
        {"index": index, "source": source, "mask": mask, "dates": len(dates),
         "first": str(dates[0]), "last": str(dates[-1]), "dates_sha": digest,
         "harmonics": HARMONICS, "min_clear_share": MIN_CLEAR_SHARE},
        list(TEMPORAL_COLUMNS), sensor="S2")
    store.write_features(fs, ids, X)
    return fs
