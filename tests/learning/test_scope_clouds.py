"""A session's scope can leave out cloudy patches (`max_cloud`); unknown cloud fractions
(NULL) stay in; the scope is the same when the session is reopened (API and CLI)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.session import Session
from tests.cli.process import in_process
from tests.learning.sessions import _create

LEVEL = 16


def _set_clouds(store, product: str) -> None:
    """Known cloud fractions on the product's patches: patch_id % 10 tenths, NULL on
    every seventh patch (as for a product without a cloud mask)."""
    store.execute("UPDATE patches SET cloud_fraction = CAST(patch_id % 10 AS REAL) / 10 "
                  "WHERE product_id = ?", (product,))
    store.execute("UPDATE patches SET cloud_fraction = NULL WHERE patch_id % 7 = 0 AND "
                  "product_id = ?", (product,))


def _expected(store, product: str, max_cloud: float) -> list[int]:
    return [r[0] for r in store.query(
        "SELECT patch_id FROM patches WHERE product_id = ? AND level = ? AND "
        "(cloud_fraction IS NULL OR cloud_fraction <= CAST(? AS REAL)) ORDER BY patch_id",
        (product, LEVEL, max_cloud))]


def test_max_cloud_leaves_out_exactly_the_cloudier_patches(learn_store, oscd_db):
    pid = oscd_db["product"]
    _set_clouds(learn_store, pid)
    everything = _create(learn_store, oscd_db)
    s = _create(learn_store, oscd_db, max_cloud=0.3)
    expected = _expected(learn_store, pid, 0.3)
    above, null = learn_store.query(
        "SELECT CAST(SUM(CASE WHEN cloud_fraction > CAST(0.3 AS REAL) THEN 1 ELSE 0 END) "
        "AS BIGINT), CAST(SUM(CASE WHEN cloud_fraction IS NULL THEN 1 ELSE 0 END) AS BIGINT) "
        "FROM patches "
        "WHERE product_id = ? AND level = ?", (pid, LEVEL))[0]
    assert everything.data.n == 896 and (above, null) == (463, 128)
    assert s.data.n == len(expected) == 896 - 463
    assert s.patch_ids.tolist() == expected  # NULL kept, 0.3 kept, 0.4 and above out
    kept = dict(learn_store.query(
        "SELECT patch_id, cloud_fraction FROM patches WHERE product_id = ? AND level = ?",
        (pid, LEVEL)))
    assert {None if kept[p] is None else round(kept[p], 6) for p in expected} == {
        None, 0.0, 0.1, 0.2, 0.3}
    assert s.params.max_cloud == 0.3
    reopened = Session.open(learn_store, s.session_id)
    assert reopened.params.max_cloud == 0.3
    np.testing.assert_array_equal(reopened.patch_ids, s.patch_ids)
    assert "max_cloud" not in learn_store.query(  # sessions without it: params unchanged
        "SELECT params FROM sessions WHERE session_id = ?", (everything.session_id,))[0][0]
    with pytest.raises(SessionError, match=r"cloud fraction above 0.*raise --max-cloud"):
        learn_store.execute("UPDATE patches SET cloud_fraction = 0.5")
        _create(learn_store, oscd_db, max_cloud=0.0)
    with pytest.raises(SessionError, match=r"max_cloud must be a fraction in \[0, 1\]"):
        _create(learn_store, oscd_db, max_cloud=1.5)


def test_cli_max_cloud(learn_store, oscd_db, tmp_path, capsys):
    pid = oscd_db["product"]
    _set_clouds(learn_store, pid)
    expected = _expected(learn_store, pid, 0.5)
    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    r = run(["session", "create", "--db", db, "--name", "clear only", "--owner", "ana",
             "--concept", "new_construction", "--product", pid, "--level", str(LEVEL),
             "--features", oscd_db["fs"], "--max-cloud", "0.5"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    assert f"{896 - len(expected)} patches with cloud_fraction > 0.5 left out" in r.stderr
    from eominer.store import open_store

    with open_store(db) as store:
        s = Session.open(store, r.stdout.strip())
        assert s.patch_ids.tolist() == expected and s.params.max_cloud == 0.5
    r = run(["session", "create", "--db", db, "--name", "x", "--owner", "ana", "--concept",
             "new_construction", "--product", pid, "--level", str(LEVEL), "--features",
             oscd_db["fs"], "--max-cloud", "2"], tmp_path / "ws")
    assert r.returncode == 2 and "--max-cloud" in r.stderr
