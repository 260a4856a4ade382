"""fusion/featureset.py: fused S1+S2 feature sets in the database."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import GridMismatchError
from eominer.evaluation import bigearthnet
from eominer.fusion import featureset
from eominer.fusion.bands import S2_FUSION_BANDS
from eominer.fusion.features import S2_FEATURE_NAMES, fuse, s1_descriptors

S2 = "S2A_MSIL2A_20170617T113321_36_85"


S1 = "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85"


def test_fused_feature_set(paired, ben):
    store, pairs, *_ = paired
    fs, n = featureset.build_fused_features(store, 120, weights=(1.0, 2.0))
    assert n == 3 and fs.dims == 41 and fs.sensor == "S1+S2"
    # its S2 rows were computed from their S1 partners too: removing one takes its
    # partners' rows out (test_removal.py)
    assert store.feature_set_sources(fs.feature_set_id) == sorted({p["s1_id"] for p in pairs})
    # the per-sensor descriptors are registered ones: their names + parameters are in the
    # fused set's identity
    assert fs.params["descriptors"] == {
        "s2stats": {"version": 1, "bands": list(S2_FUSION_BANDS),
                    "indices": ["ndvi", "ndwi", "ndbi"]},
        "s1stats": {"version": 1, "percentiles": [10.0, 90.0], "divide_by": 10.0}}
    ids, X, _ = store.read_features([fs.feature_set_id], [p["s2_id"] for p in pairs], 120)
    assert len(ids) == 3
    # the S1 block equals the descriptors of the BigEarthNet patch, weighted
    patch = next(p for p in bigearthnet.load(ben) if p.patch_id == S2)
    row = X[list(ids).index(store.patch_ids([S2], 120)[0])]
    expect = fuse(np.zeros((1, 30)), s1_descriptors(patch.s1)[None], (1.0, 2.0))[0, 30:]
    np.testing.assert_allclose(row[30:40], expect, rtol=1e-5)
    assert row[-1] == 1.0  # optical usable
    b02 = row[S2_FEATURE_NAMES.index("s2_b02_mean")] * np.sqrt(30)
    assert b02 == pytest.approx(float(patch.s2[1].mean()), rel=1e-4)
    with pytest.raises(GridMismatchError, match="no patches at level 64 \\(levels: \\[60, 120\\]"):
        featureset.build_fused_features(store, 64)


def test_cloudy_patch_gets_no_optical_block(paired):
    store, *_ = paired
    pid = int(store.patch_ids([S2], 60)[0])
    store.execute("UPDATE patches SET cloud_fraction = ? WHERE patch_id = ?", (0.9, pid))
    try:
        fs, _ = featureset.build_fused_features(store, 60)
        ids, X, _ = store.read_features([fs.feature_set_id], [S2], 60)
        row = X[list(ids).index(pid)]
        assert row[-1] == 0.0 and not row[:30].any() and row[30:40].any()
        assert X[list(ids).index(pid) + 1][-1] == 1.0
    finally:
        store.execute("UPDATE patches SET cloud_fraction = NULL WHERE patch_id = ?", (pid,))


def test_fuse_two_existing_feature_sets(paired):
    store, *_ = paired
    s2_ids, s1_ids = store.patch_ids([S2], 60), store.patch_ids([S1], 60)
    a = store.register_feature_set("t_optical", 1, {}, ["a", "b"], sensor="S2")
    b = store.register_feature_set("t_radar", 1, {}, ["c"], sensor="S1")
    store.write_features(a, s2_ids, np.arange(8, dtype=np.float32).reshape(4, 2))
    store.write_features(b, s1_ids, np.array([[10], [20], [30], [40]], np.float32))
    with pytest.raises(Exception, match="is for S2, expected S1"):
        featureset.fuse_feature_sets(store, a.feature_set_id, a.feature_set_id, 60)
    fs, n = featureset.fuse_feature_sets(store, a.feature_set_id, b.feature_set_id, 60,
                                         pairs=store.fusion_pairs(S2))
    assert n == 4 and list(fs.columns) == ["s2_a", "s2_b", "s1_c", "s2_usable"]
    ids, X, _ = store.read_features([fs.feature_set_id], [S2], 60)
    np.testing.assert_array_equal(ids, s2_ids)
    # same grid: S2 patch k pairs with S1 patch k; S1 block = value / sqrt(1)
    np.testing.assert_allclose(X[:, 2], [10, 20, 30, 40])
    np.testing.assert_allclose(X[:, 0] * np.sqrt(2), [0, 2, 4, 6], atol=1e-6)


def test_mining_session_runs_on_fused_features(paired):
    from eominer.learning.session import Session

    store, pairs, *_ = paired
    fs, _ = featureset.build_fused_features(store, 60)
    products = [p["s2_id"] for p in pairs]
    s = Session.create(store, "pastures from S1+S2", "ana", "pastures", products, 60,
                       [fs.feature_set_id], model_kind="logistic")
    assert s.data.X.shape == (12, 41) and s.missing == 0
    ids = s.patch_ids
    # patches of the two pasture-only/pasture-rich products: yes; the December one: no
    dec = set(store.patch_ids(["S2A_MSIL2A_20171221T112501_56_35"], 60).tolist())
    for pid in ids[:2]:
        s.label(int(pid), 1 if int(pid) not in dec else -1, "ana")
    for pid in sorted(dec)[:2]:
        s.label(int(pid), -1, "ana")
    r = s.run_round(n=3)
    assert r.scores is not None and r.scores.shape == (12,)
    assert len(r.query_ids) == 3
    dec_rows = np.isin(ids, list(dec))
    assert r.scores[~dec_rows].mean() > r.scores[dec_rows].mean()


def test_fuse_the_spectral_and_sar_descriptor_sets(paired):
    """Feature-level fusion of eominer.features' own 'spectral' (S2) and 'sar' (S1) sets."""
    from compute.extract import ExtractReport, compute_block, create_feature_sets, plan

    store, pairs, *_ = paired
    tasks, sets = plan(store, ["spectral", "sar"], None, 480, ExtractReport("t"))
    create_feature_sets(store, sets)
    for t in tasks:
        ids, values = compute_block(t)
        store.write_features(sets[t.feature_set_id], ids, values)
    spectral = next(f for f in sets.values() if f.name == "spectral")
    sar = next(f for f in sets.values() if f.name == "sar")
    fs, n = featureset.fuse_feature_sets(store, spectral.feature_set_id, sar.feature_set_id, 60)
    assert n == 12 and fs.dims == spectral.dims + sar.dims + 1
    ids, X, _ = store.read_features([fs.feature_set_id], [S2], 60)
    s1_ids, S1X, _ = store.read_features([sar.feature_set_id], [S1], 60)
    np.testing.assert_allclose(X[:, spectral.dims:-1] * np.sqrt(sar.dims), S1X, rtol=1e-5)
