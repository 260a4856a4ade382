"""Compact (int8) session features against float32, on real OSCD features (issue 18)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from eominer.errors import SessionError
from eominer.evaluation.ranking import average_precision
from eominer.learning import int8_kernels
from eominer.learning.coldstart import find_similar
from eominer.learning.compact import CompactMatrix, choose_dtype
from eominer.learning.engine import SessionData, fit_score_pick
from eominer.learning.scope import check_memory, load_compact
from eominer.learning.session import Session
from tests.conftest import positives


def test_codes_rows_and_gemv_within_the_rounding_bound(bordeaux):
    data, y, rows = bordeaux
    Z = data.X  # standardised float32, real features
    C = CompactMatrix.from_array(Z)
    assert C.codes.dtype == np.int8 and C.nbytes < Z.nbytes / 3.9
    err = C.max_abs_error()
    assert (np.abs(C[:] - Z) <= err).all()  # every element within scale / 2
    assert np.abs(C[:] - Z).max() > 0.1 * err.max()  # (and the bound is not loose)
    w = np.random.default_rng(0).standard_normal(Z.shape[1]).astype(np.float32)
    got = C @ w
    # the blocked GEMV equals the product of the dequantised rows...
    np.testing.assert_allclose(got, C[:] @ w, rtol=1e-4, atol=1e-4)
    # ...and is within sum_j |w_j| err_j of the float32 product
    assert np.abs(got - Z @ w).max() <= float(np.abs(w) @ err) + 1e-3
    np.testing.assert_array_equal(C[rows], C.rows_f32(rows))
    W = CompactMatrix(C.codes, C.scale, C.offset)
    f = np.linspace(0.5, 2.0, Z.shape[1]).astype(np.float32)
    W *= f  # per-feature-set weights (scope.weigh_feature_sets) on the compact form
    np.testing.assert_allclose(W[rows], C[rows] * f, rtol=1e-5, atol=1e-5)
    assert C.matvec(w, threads=2).tolist() == C.matvec(w, threads=1).tolist()
    # the fused row norms equal the dequantised rows' own
    np.testing.assert_allclose(C.sq_norms(threads=2), np.einsum("ij,ij->i", C[:], C[:]),
                               rtol=1e-4)


def test_auto_dtype_and_the_memory_check():
    assert choose_dtype("auto", 1_000_000, 128) == "float32"
    assert choose_dtype("auto", 10_000_000, 128) == "int8"
    with pytest.raises(SessionError, match="unknown session features dtype 'float16'"):
        choose_dtype("float16", 10, 10)
    with pytest.raises(SessionError, match=r"10,000,000 patches x 128 features need ~10\.1 GiB "
                       r"to load as float32, and 4\.0 GiB .*features_dtype='int8'"):
        check_memory(10_000_000, 128, "float32", available=4 << 30)
    check_memory(10_000_000, 128, "int8", available=4 << 30)  # 1.8 GiB: fits


def test_nonfinite_values_become_the_mean_in_int8_too():
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    X[1, 2], X[3, 0] = np.nan, np.inf
    a = SessionData(np.arange(10), X.copy(), dtype="float32")
    b = SessionData(np.arange(10), X.copy(), dtype="int8")
    assert b.dtype == "int8" and a.n_nonfinite == b.n_nonfinite == 2
    err = b.X.max_abs_error()
    assert abs(b.X[1][2]) <= err[2] and abs(b.X[3][0]) <= err[0]  # the code nearest 0
    np.testing.assert_allclose(b.X[:], a.X, atol=float(b.X.max_abs_error().max()) + 1e-6)


def _labels(session, truth, n_pos=8, n_neg=30, seed=0):
    pos = np.asarray(sorted(positives(truth)))
    neg = np.asarray(sorted(set(truth) - set(pos.tolist())))
    rng = np.random.default_rng(seed)
    ids = np.concatenate([rng.choice(pos, n_pos, replace=False),
                          rng.choice(neg, n_neg, replace=False)])
    y = np.where(np.isin(ids, pos), 1, -1).astype(np.int8)
    return session.data.rows(ids), y


@pytest.mark.parametrize("level", [16])
def test_int8_session_ranks_like_float32(learn_store, oscd_db, level):
    """A session loaded from the store straight into int8 (exact rows for the fit) gives
    the same AP as float32 within 0.005, on the same labels, for every model."""
    truth = oscd_db["truth"][level]
    s32 = Session.create(learn_store, "nb", "ana", "new_construction", [oscd_db["product"]],
                         level, [oscd_db["fs"]], features_dtype="float32")
    s8 = Session.open(learn_store, s32.session_id, features_dtype="int8")  # same signature
    a, b = s32.data, s8.data
    assert a.dtype == "float32" and b.dtype == "int8" and b.nbytes < a.nbytes / 3.9
    assert np.array_equal(a.patch_ids, b.patch_ids) and a.names == b.names
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.std, a.std, rtol=1e-4)  # sum of squares in float32 dots
    np.testing.assert_allclose(b.centres, a.centres)
    y_all = np.where(np.isin(a.patch_ids, list(positives(truth))), 1, -1)
    for seed in range(3):
        rows, y = _labels(s32, truth, seed=seed)
        np.testing.assert_allclose(b.rows_f32(rows), a.X[rows], rtol=1e-4, atol=1e-4)  # exact
        for kind in ("logistic", "linear_svm", "rbf_svm", "qbe_mean", "qbe_knn"):
            _, sa, pa_, _ = fit_score_pick(a, rows, y, model_kind=kind, strategy="margin")
            _, sb, pb, _ = fit_score_pick(b, rows, y, model_kind=kind, strategy="margin")
            d_ap = abs(average_precision(y_all, sa) - average_precision(y_all, sb))
            assert d_ap <= 0.005, (kind, seed, d_ap)
            assert np.abs(sa - sb).max() <= 0.2, (kind, seed)
            top_a, top_b = np.argsort(-sa)[:100], np.argsort(-sb)[:100]
            assert len(np.intersect1d(top_a, top_b)) >= 90, (kind, seed)
    # find more like this and cold start on the int8 matrix
    row = int(rows[0])
    fa = find_similar(a.X, row, 50, a.sq_norms)
    fb = find_similar(b.X, row, 50, b.sq_norms)
    assert len(np.intersect1d(fa, fb)) >= 45
    assert len(set(s8.cold_start(12).tolist())) == 12


def _store_with(tmp_path, X):
    from eominer.store import open_store

    n, d = X.shape
    store = open_store(f"duckdb:///{tmp_path / 'mid.duckdb'}")
    ids = np.arange(1, n + 1, dtype=np.int64)
    zeros = np.zeros(n)
    store.insert_arrow("patches", pa.table({
        "patch_id": ids, "product_id": pa.array(["P"] * n), "level": np.full(n, 32, np.int32),
        "size_px": np.full(n, 32, np.int32), "row": np.zeros(n, np.int32),
        "col": np.zeros(n, np.int32), "x_off": np.zeros(n, np.int32),
        "y_off": np.zeros(n, np.int32),
        **{k: zeros for k in ("min_x", "min_y", "max_x", "max_y", "min_lon", "min_lat",
                              "max_lon", "max_lat")},
        "valid_fraction": np.ones(n, np.float32), "cloud_fraction": pa.nulls(n, pa.float32()),
        "parent_id": pa.nulls(n, pa.int64())}))
    cols = [f"f{j:03d}" for j in range(d)]
    fs = store.register_feature_set("mid", 1, {"d": d}, cols)
    # rows shuffled in the table: the loader must put them in patch_id order
    perm = np.random.default_rng(1).permutation(n)
    store.write_features(fs, ids[perm], X[perm], replace=False)
    return store, fs, ids


def test_loading_holds_no_float32_copy(tmp_path, bordeaux):
    """300k rows of real OSCD features (repeated, jittered) from DuckDB into int8: the
    loader's numpy allocations peak below 1.3x the int8 matrix (float32 would be 4x), and
    the codes equal quantising the float32 matrix."""
    data, _, _ = bordeaux
    base = (data.X * data.std + data.mean).astype(np.float32)  # the raw features
    rng = np.random.default_rng(2)
    n = 300_000
    X = base[rng.integers(0, len(base), n)]
    X *= 1 + 0.01 * rng.standard_normal(X.shape, dtype=np.float32)
    X[5, 3], X[9, 4] = np.nan, -np.inf  # MIN/MAX asked again without them
    store, fs, ids = _store_with(tmp_path, X)
    pids = ids[ids != 7]  # one patch left out of the scope
    int8_kernels.warm()  # numba's first load of the kernels allocates ~20 MB, once a process
    tracemalloc.start()
    got_ids, C, present = load_compact(store, [fs.feature_set_id], pids)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    store.close()
    assert peak < 1.3 * C.codes.nbytes, (peak, C.codes.nbytes)
    assert present.all() and np.array_equal(got_ids, pids)
    keep = ids != 7
    ref = CompactMatrix.from_array(X[keep])
    np.testing.assert_allclose(C.scale, ref.scale, rtol=1e-6)
    assert C.codes.shape == (len(pids), X.shape[1]) and C.codes.flags.c_contiguous
    assert (np.abs(C.codes.astype(int) - ref.codes) <= 1).all()  # rounding at .5 only
    assert C.stats["n_nonfinite"] == 2 and sorted(C.nonfinite[0].tolist()) == [5, 8]  # id 7 out
    assert np.isfinite(C.scale).all() and np.isnan(C.stats["raw_sums"][3])
    fin = np.where(np.isfinite(X[keep]), X[keep], np.nan)
    np.testing.assert_allclose(C.stats["mean"], np.nanmean(fin, 0, dtype=np.float64), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(C.stats["std"], np.nanstd(fin, 0, dtype=np.float64), rtol=1e-4)


@pytest.mark.parametrize("compiled", [True, False])
def test_fused_round_and_search_equal_the_plain_path(bordeaux, monkeypatch, compiled):
    """The one-pass kernels (score + sigmoid + margin pick; distance + running top k),
    over two worker threads, give the plain path's values on real OSCD features: the
    GEMV, `models.sigmoid` and `strategies.margin` / `smallest`, and numpy's float64
    product of the dequantised rows. Also without numba (the numpy fallback)."""
    import eominer.learning.compact as compact
    from eominer.learning.models import make_model, similar_to
    from eominer.learning.strategies import diverse, margin, smallest

    if not compiled:
        monkeypatch.setattr(int8_kernels, "_compiled", lambda: None)
    monkeypatch.setattr(compact, "PARALLEL_ROWS", 300)  # two workers on these 896 rows
    data, y, rows = bordeaux
    C = CompactMatrix.from_array(data.X)
    assert len(C) > 2 * 300
    X64 = C[:].astype(np.float64)  # the dequantised rows
    for kind in ("logistic", "linear_svm", "qbe_mean"):
        m = make_model(kind).fit(data.X[rows], y[rows])
        w, b, slope = m.linear_form()
        plain = m.score(C)  # GEMV, then numpy's sigmoid
        ref = 1.0 / (1.0 + np.exp(-slope * (X64 @ w.astype(np.float64) + b)))
        for k in (1, 20, 200):
            got, pick = C.score_margin(w, b, slope, k, exclude=rows, threads=2)
            # the same float32 steps; exp from libm vs numpy's SIMD one: within 2 ulp
            np.testing.assert_allclose(got, plain, rtol=0, atol=2.4e-7)
            np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)
            assert pick.tolist() == margin(got, k, exclude=rows).tolist()  # exactly
            assert pick.tolist() == margin(plain, k, exclude=rows).tolist(), (kind, k)
            # against float64: the k nearest to 0.5 in order, up to swaps of neighbours
            # closer than the float32 scores' bound (2e-5 each; the 2026-12-03 install's
            # fit swapped two whose float64 distances are 4.5e-7 apart)
            d = np.where(np.isin(np.arange(len(C)), rows), np.inf, np.abs(ref - 0.5))
            want = smallest(d, k)
            assert d[pick].max() <= d[want].max() + 4e-5, (kind, k)
            assert (np.diff(d[pick]) >= -4e-5).all(), (kind, k)
            assert not np.isin(pick, rows).any() and len(pick) == k
        one, _ = C.score_margin(w, b, slope, 20, exclude=rows, threads=1)
        assert one.tolist() == got.tolist()  # thread count does not change a value
    # a round of a compact session: the fused path's picks are the plain strategy's
    S = SessionData(data.patch_ids, C, standardise=False, stats={"n_nonfinite": 0})
    for strategy in ("margin", "diverse"):
        _, s, p, _ = fit_score_pick(S, rows, y[rows], strategy=strategy, n=20)
        plain = make_model("logistic").fit(S.rows_f32(rows), y[rows]).score(C)
        want = (margin(plain, 20, exclude=rows) if strategy == "margin"
                else diverse(plain, 20, X=C, exclude=rows))
        assert p.tolist() == want.tolist(), strategy
    # similarity: the kernel's running top k is the plain GEMV's ranking, values equal
    sq = C.sq_norms(threads=1)
    for q_row in rows[:3]:
        q = C[int(q_row)]
        for use_sq in (sq, None):
            idx, sims = similar_to(C, q, 50, use_sq)
            v = C.matvec(q, threads=1)
            if use_sq is not None:
                v *= np.float32(2.0)
                v -= use_sq
                v -= np.float32(q @ q)
            top = smallest(-v, 50)
            assert idx.tolist() == top.tolist() and sims.tolist() == v[top].tolist()
            if use_sq is not None:  # the query itself first; float64 agrees on the order
                d64 = ((X64 - X64[int(q_row)]) ** 2).sum(1)
                assert idx[0] == q_row
                np.testing.assert_allclose(-sims, d64[idx], rtol=1e-4, atol=1e-3)
                assert d64[idx].max() <= np.sort(d64)[50] + 1e-3
