"""Neighbourhood feature sets (eominer.features.neighbours): by hand, and on real
features in the store."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import FeatureError
from eominer.features.neighbours import build_neighbour_set, neighbour_means


def test_the_mean_of_the_other_patches_within_reach_by_hand():
    # a 3 x 3 grid without its (0, 2) cell, and a patch far away with no neighbour
    cells = [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (9, 9)]
    row = np.array([r for r, _ in cells]) + 40  # a grid need not start at 0
    col = np.array([c for _, c in cells]) + 7
    X = np.array([[10.0 * k, k] for k in range(len(cells))], np.float32)
    got = neighbour_means(X, row, col, 1)
    centre = [k for k in range(8) if k != 3]  # (1, 1) is row 3
    np.testing.assert_allclose(got[3], X[centre].mean(axis=0))
    np.testing.assert_allclose(got[0], X[[1, 2, 3]].mean(axis=0))  # a corner: 3 of 3 there
    np.testing.assert_allclose(got[1], X[[0, 2, 3, 4]].mean(axis=0))  # (0, 2) is missing
    np.testing.assert_array_equal(got[8], X[8])  # alone: its own features
    # reach 2 takes the whole 3 x 3 block but the patch itself
    np.testing.assert_allclose(neighbour_means(X, row, col, 2)[0], X[1:8].mean(axis=0))
    # the rows' order does not matter
    p = np.random.default_rng(0).permutation(len(cells))
    np.testing.assert_array_equal(neighbour_means(X[p], row[p], col[p], 1), got[p])


def test_a_reach_out_of_range_is_refused():
    X = np.zeros((2, 3), np.float32)
    for reach in (0, 6):
        with pytest.raises(FeatureError, match="reach must be 1-5 grid cells"):
            neighbour_means(X, [0, 1], [0, 0], reach)


def test_built_from_real_features_equal_to_their_neighbours_mean(learn_store, oscd_db):
    store = learn_store
    fs, n = build_neighbour_set(store, oscd_db["fs"], 2)
    src = store.require_feature_set(oscd_db["fs"])
    assert fs.name == f"nbr_{src.name}" and fs.columns == src.columns
    assert n == store.count_features(src) > 0
    for level in sorted(oscd_db["truth"]):
        ids, X, _ = store.read_features([src.feature_set_id], [oscd_db["product"]], level)
        got_ids, got, _ = store.read_features([fs.feature_set_id], [oscd_db["product"]], level)
        np.testing.assert_array_equal(got_ids, ids)
        cells = store.scope_patches([oscd_db["product"]], level, ["patch_id", "row", "col"])
        at = np.searchsorted(cells["patch_id"].to_numpy(), ids)
        r, c = cells["row"].to_numpy()[at], cells["col"].to_numpy()[at]
        k = int(np.argmin((r - r.mean()) ** 2 + (c - c.mean()) ** 2))  # a patch inside
        near = (np.abs(r - r[k]) <= 2) & (np.abs(c - c[k]) <= 2)
        near[k] = False
        assert near.sum() >= 8 or level == max(oscd_db["truth"])
        np.testing.assert_allclose(got[k], X[near].mean(axis=0), rtol=1e-5, atol=1e-6)
    # the same source and reach: the same set, rewritten in place; another reach: another
    again, n2 = build_neighbour_set(store, src.name, 2)
    assert again.feature_set_id == fs.feature_set_id and n2 == n
    assert store.count_features(fs) == n
    assert build_neighbour_set(store, src.feature_set_id, 1)[0].feature_set_id != \
        fs.feature_set_id
    # a session can take it beside its source
    level = min(oscd_db["truth"])
    assert fs.feature_set_id in store.covering_feature_sets([oscd_db["product"]], level)
    with pytest.raises(FeatureError, match="is a neighbourhood set already"):
        build_neighbour_set(store, fs.feature_set_id, 2)
