"""A real store for the learning tests: OSCD Bordeaux, both dates ingested at levels
16 and 32, with per-patch change features (both dates, difference) written as a feature
set, and the change map's per-patch share of changed pixels as ground truth."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from eominer.evaluation.patches import block_view, pair_feature_names, pair_stats

LEVELS = (16, 32)
CITY = "bordeaux"


@pytest.fixture(scope="session")
def oscd_db(tmp_path_factory, shared_data: Path) -> dict:
    """Build once per test run; tests get their own copy (`learn_store`)."""
    import rasterio

    from eominer.ingest import ingest_paths
    from eominer.io.ard import read_ard
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("learn_ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        db = home / "base.duckdb"
        store = open_store(f"duckdb:///{db}")
        imgs = shared_data / "oscd" / "images" / CITY
        res = ingest_paths(store, [imgs / "imgs_1", imgs / "imgs_2"], levels=LEVELS)
        p1, p2 = res[0], res[1]
        a1, a2 = read_ard(p1.ard_path), read_ard(p2.ard_path)
        with rasterio.open(shared_data / "oscd" / "labels" / CITY / "cm" / f"{CITY}-cm.tif") as ds:
            cm = ds.read(1)
        names = pair_feature_names()
        fs = store.register_feature_set("oscd_pair_stats", 1, {"pair": "test"}, names, "S2")
        truth = {}
        for level in LEVELS:
            t = store.patches(p1.product_id, level)
            nc = a1.shape[2] // level
            order = t["row"].to_numpy() * nc + t["col"].to_numpy()
            X = pair_stats(a1, a2, level)[order]
            store.write_features(fs, t["patch_id"].to_numpy(), X)
            share = block_view((cm == 2)[None].astype(np.float32), level).mean(2)[:, 0][order]
            truth[level] = dict(zip(t["patch_id"].to_numpy().tolist(), share.tolist()))
        store.close()
    return {"db": db, "home": home, "product": p1.product_id, "product2": p2.product_id,
            "fs": fs.feature_set_id, "truth": truth}


@pytest.fixture
def learn_store(oscd_db: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from eominer.store import open_store

    monkeypatch.setenv("EOMINER_HOME", str(tmp_path / "ws"))
    os.makedirs(tmp_path / "ws", exist_ok=True)
    db = tmp_path / "t.duckdb"
    shutil.copy(oscd_db["db"], db)
    store = open_store(f"duckdb:///{db}")
    yield store
    store.close()


def positives(truth: dict[int, float], share: float = 0.05) -> set[int]:
    return {p for p, s in truth.items() if s > share}
