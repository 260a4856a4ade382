"""The eo-learn TestEOPatch task on the real EOPatch: its reference scene ingested at
4 px (625 patches), the majority LULC labels, the `temporal` feature set, bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from eominer.change.timeseries import TEMPORAL_COLUMNS, day_numbers, temporal_descriptors
from eominer.errors import GridMismatchError, ProductReadError, SessionError
from eominer.evaluation import eolearn as E
from eominer.evaluation.tasks import eolearn_tasks
from tests.conftest import fresh_workspace

LEVEL = 4


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, shared_data: Path):
    """(store, EolearnTasks, EOPatch) on a fresh workspace; temporal features written."""
    with fresh_workspace(tmp_path_factory, "eolearn_ws") as (home, store):
        got = eolearn_tasks(store, shared_data, level=LEVEL, workdir=home)
        eop = E.read_eopatch(shared_data)
        fs = E.temporal_feature_set(store, eop, got.product_id, LEVEL)
        yield store, got, eop, fs


def _patch(store, pid: str, row: int, col: int) -> tuple[int, int, int]:
    t = store.patches(pid, LEVEL)
    at = np.flatnonzero((t["row"].to_numpy() == row) & (t["col"].to_numpy() == col))[0]
    return (int(t["patch_id"][at].as_py()), int(t["x_off"][at].as_py()),
            int(t["y_off"][at].as_py()))


def _truth(got, name: str, patch_id: int) -> int | None:
    task = next(t for t in got.tasks if t.name == name)
    at = np.flatnonzero(task.patch_ids == patch_id)
    return int(task.y[at[0]]) if len(at) else None


def test_the_product_is_the_reference_scene_on_the_arrays_grid(ingested) -> None:
    import rasterio

    store, got, eop, _ = ingested
    prod = store.product(got.product_id)
    assert (prod.width, prod.height) == (100, 101) and str(prod.acquired)[:10] == "2015-07-11"
    assert store.patches(got.product_id, LEVEL).num_rows == 25 * 25
    with rasterio.open(prod.ard_path) as ds:
        b08 = ds.read(list(prod.bands).index("B08") + 1)
        assert ds.crs.to_epsg() == 32633 and ds.transform.a == 10.0
    # B08 is the 8th band of eo-learn's L1C stack; DN = reflectance x 10000
    np.testing.assert_array_equal(b08, np.rint(eop.scenes[E.REFERENCE_SCENE, ..., 7] * 1e4))


# (row, col) of 4 px patches -> LULC pixel counts, counted by hand on mask_timeless/LULC
HAND = {(1, 12): {2: 9, 3: 6, 8: 1},            # forest
        (0, 9): {3: 8, 4: 8},                   # a tie: grassland (smaller id)
        (0, 10): {2: 3, 3: 5, 4: 6, 8: 2},      # shrubland: most frequent, not > 50 %
        (1, 4): {0: 7, 2: 7, 3: 1, 4: 1}}       # a tie with no data: in no class


def test_majority_labels_equal_a_hand_count(ingested) -> None:
    store, got, eop, _ = ingested
    for (row, col), counts in HAND.items():
        pid, x, y = _patch(store, got.product_id, row, col)
        assert (x, y) == (4 * col, 4 * row)
        assert dict(Counter(eop.lulc[y:y + 4, x:x + 4].ravel().tolist())) == counts
    f, g, s = "eolearn_forest", "eolearn_grassland", "eolearn_shrubland"
    pair = "eolearn_grassland_vs_forest"
    want = {(1, 12): (1, -1, -1, -1), (0, 9): (-1, 1, -1, 1), (0, 10): (-1, -1, 1, None),
            (1, 4): (-1, -1, -1, None)}
    for (row, col), expected in want.items():
        pid = _patch(store, got.product_id, row, col)[0]
        assert tuple(_truth(got, n, pid) for n in (f, g, s, pair)) == expected, (row, col)
    # classes present with >= 10 patches; cultivated (11 px in all) cannot be a task
    assert [t.name for t in got.tasks] == [f, g, s, pair]
    assert [t.positives for t in got.tasks] == [482, 111, 18, 111]
    assert any("cultivated_vs_grassland: 0 patches of majority cultivated" in n
               for n in got.notes)


def test_the_pair_session_scope_is_the_pool(ingested) -> None:
    from eominer.learning.session import Session

    store, got, _, fs = ingested
    task = next(t for t in got.tasks if t.name == "eolearn_grassland_vs_forest")
    assert len(task.patch_ids) == 593  # 482 forest + 111 grassland of the 625
    s = Session.create(store, "pool", "eval", task.concept, list(task.product_ids), LEVEL,
                       [fs.feature_set_id], model_kind="logistic", where=task.where)
    np.testing.assert_array_equal(s.patch_ids, task.patch_ids)
    s.close()


def test_stored_temporal_descriptors_equal_a_hand_computation(ingested, shared_data) -> None:
    store, got, _, fs = ingested
    root = shared_data / "eolearn_testeopatch" / "TestEOPatch"
    ndvi = np.load(root / "data" / "NDVI.npy")[..., 0]
    clear = (np.load(root / "mask" / "IS_VALID.npy")[..., 0]
             & (np.load(root / "mask" / "CLM.npy")[..., 0] == 0))
    days = day_numbers(json.loads((root / "timestamps.json").read_text()))
    ids, X, cols = store.read_features([fs.feature_set_id], [got.product_id], LEVEL)
    assert [c.split("__")[1] for c in cols] == list(TEMPORAL_COLUMNS)
    for row, col in ((1, 12), (20, 3)):
        pid, x, y = _patch(store, got.product_id, row, col)
        v = ndvi[:, y:y + 4, x:x + 4].reshape(68, 16)
        c = clear[:, y:y + 4, x:x + 4].reshape(68, 16)
        # per date: median of the clear pixels, clear when at least half of the 16 are
        series = np.array([np.median(v[t][c[t]]) if c[t].sum() >= 8 else np.nan
                           for t in range(68)])
        ok = np.isfinite(series)
        hand = temporal_descriptors(series[:, None], ok[:, None], days).matrix()[0]
        np.testing.assert_allclose(X[np.flatnonzero(ids == pid)[0]], hand, rtol=1e-6)
        # a seasonal fit, no reason; n_clear: the clear dates the spike test kept
        assert 12 <= hand[4] <= ok.sum() and hand[5] == 0
    assert np.isfinite(X).all() and len(ids) == 625


def test_a_folder_without_the_eopatch_layout_is_one_clear_message(shared_data,
                                                                  tmp_path) -> None:
    src = shared_data / "eolearn_testeopatch"
    bad = tmp_path / "eolearn_testeopatch"
    bad.mkdir()
    shutil.copy(src / "REFERENCE_SCENES.npy", bad)
    with pytest.raises(ProductReadError, match=r"TestEOPatch/data/NDVI\.npy missing: the "
                       r"eo-learn task needs a folder laid out as eolearn_testeopatch/"):
        E.read_eopatch(tmp_path)
    shutil.copytree(src / "TestEOPatch", bad / "TestEOPatch")
    lulc = bad / "TestEOPatch" / "mask_timeless" / "LULC.npy"
    np.save(lulc, np.load(lulc)[:100])  # one row short
    with pytest.raises(GridMismatchError, match=r"mask_timeless/LULC\.npy is 100 x 100 px, "
                       r"data/NDVI\.npy 100 x 101"):
        E.read_eopatch(tmp_path)


def test_unknown_lulc_class_lists_the_classes(ingested, shared_data) -> None:
    store = ingested[0]
    with pytest.raises(SessionError, match=r"LULC classes \['meadow'\] unknown: one of "
                       r"\['cultivated', 'forest', 'grassland'"):
        eolearn_tasks(store, shared_data, ["meadow"], level=LEVEL)
