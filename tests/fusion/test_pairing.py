"""fusion/pairing.py: S2/S1 pairs on the ingested BigEarthNet folder."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import PairingError, ProductReadError
from eominer.fusion import pairing
from eominer.io.ard import read_ard

S2 = "S2A_MSIL2A_20170617T113321_36_85"


S1 = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85"


S1_OTHER = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55"


def test_pairs_every_s2_with_its_s1(paired):
    store, pairs, unpaired, _ = paired
    got = {p["s2_id"]: p["s1_id"] for p in pairs}
    assert got[S2] == S1 and len(got) == 3
    assert sorted(unpaired) == [f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_{i}"
                                for i in (39, 40, 41)]  # their S2 patches are not here
    p = next(p for p in pairs if p["s2_id"] == S2)
    assert p["overlap_fraction"] == pytest.approx(1.0, abs=1e-6)
    assert p["days_apart"] == pytest.approx((11 * 3600 + 33 * 60 + 21 - 6 * 3600 - 47 * 60
                                             - 24) / 86400, abs=1e-6)
    assert p["params"]["s1_scale_found"] == "db"
    # same 10 m grid here, so the resampled layer equals the S1 ARD
    layer = read_ard(p["layer_path"])
    np.testing.assert_allclose(layer, read_ard(store.product(S1).ard_path), atol=1e-3)
    again, _ = pairing.pair_products(store)  # idempotent
    assert len(store.fusion_pairs()) == 3 and {q["pair_id"] for q in again} == {
        q["pair_id"] for q in pairs}


def test_bad_pairs_are_refused(paired):
    store, *_ = paired
    with pytest.raises(PairingError, match="give the Sentinel-2 product first"):
        pairing.check_pair(store, S1, S2)
    with pytest.raises(PairingError, match="covers 0% of .*unpaired products"):
        pairing.check_pair(store, S2, S1_OTHER)
    with pytest.raises(PairingError, match="0.2 days apart, at most 0.1 allowed"):
        pairing.check_pair(store, S2, S1, max_days=0.1)
    with pytest.raises(PairingError, match="'nope' is not in the database"):
        pairing.check_pair(store, "nope", S1)
    with pytest.raises(PairingError, match="give both an S2 and an S1"):
        pairing.pair_products(store, S2, None)


def test_linear_s1_ard_is_detected(paired):
    """Ingest already converts linear S1 to dB; an ARD written by another tool may not be."""
    import rasterio

    store, *_ = paired
    path = store.product(S1).ard_path
    with rasterio.open(path) as ds:
        db, profile = ds.read(), ds.profile
    try:
        with rasterio.open(path, "w", **{**profile, "driver": "GTiff"}) as ds:
            ds.write(np.power(10.0, db / 10.0).astype(np.float32))
        with pytest.raises(ProductReadError, match="looks like linear power"):
            pairing.pair_products(store, S2, S1, s1_scale="db")
        (pair,), _ = pairing.pair_products(store, S2, S1, s1_scale="auto")
        assert pair["params"]["s1_scale_found"] == "linear"
        np.testing.assert_allclose(read_ard(pair["layer_path"]), db, atol=1e-3)
    finally:
        with rasterio.open(path, "w", **{**profile, "driver": "GTiff"}) as ds:
            ds.write(db)
        pairing.pair_products(store, S2, S1)
