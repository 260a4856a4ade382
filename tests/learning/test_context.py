"""Spatial context: the fixed point by hand, the grid's edges, and sessions that use it
on the real OSCD store."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning.context import PatchGrid, load_grid, smooth
from eominer.learning.engine import with_answers
from eominer.learning.session import Session
from tests.learning.sessions import _answer, _create, _seed_labels, create_args


def test_two_touching_patches_by_hand():
    # f1 = 0.5 * 1 + 0.5 * f2, f2 = 0.5 * 0 + 0.5 * f1  ->  f1 = 2/3, f2 = 1/3
    g = PatchGrid.from_cells(["a", "a"], [0, 0], [0, 1])
    np.testing.assert_allclose(smooth(np.array([1.0, 0.0]), g, 0.5), [2 / 3, 1 / 3], atol=1e-5)


def test_fixed_point_equals_the_linear_solve_on_a_holed_grid():
    rng = np.random.default_rng(3)
    cells = [(r, c) for r in range(5) for c in range(6) if (r, c) not in {(2, 2), (0, 5)}]
    row, col = np.array(cells).T
    s = rng.random(len(cells))
    a = 0.4
    n = len(cells)
    N = np.zeros((n, n))  # mean over the touching cells present, by hand
    for i, (r, c) in enumerate(cells):
        nb = [j for j, (r2, c2) in enumerate(cells)
              if (r2, c2) != (r, c) and abs(r2 - r) <= 1 and abs(c2 - c) <= 1]
        N[i, nb] = 1.0 / len(nb)
    want = np.linalg.solve(np.eye(n) - a * N, (1 - a) * s)
    got = smooth(s, PatchGrid.from_cells(["p"] * n, row, col), a)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_lonely_patches_keep_their_score_and_products_do_not_mix():
    # product a: a lonely cell (0, 0) and a pair at (3, 3)-(3, 4); product b: the same
    # cells as a's pair, with other scores
    g = PatchGrid.from_cells(["a", "a", "a", "b", "b"], [0, 3, 3, 3, 3], [0, 3, 4, 3, 4])
    s = np.array([0.9, 1.0, 0.0, 0.2, 0.2])
    got = smooth(s, g, 0.5)
    np.testing.assert_allclose(got, [0.9, 2 / 3, 1 / 3, 0.2, 0.2], atol=1e-5)
    np.testing.assert_array_equal(smooth(s, g, 0.0), s.astype(np.float32))


def test_bad_alpha_and_misaligned_scores_are_refused():
    g = PatchGrid.from_cells(["a"], [0], [0])
    with pytest.raises(ValueError, match=r"spatial_context must be in \[0, 0.9\]"):
        smooth(np.ones(1), g, 0.95)
    with pytest.raises(ValueError, match="2 scores for a grid of 1"):
        smooth(np.ones(2), g, 0.3)


def test_sessions_rank_by_the_smoothed_scores_and_resume_them(learn_store, oscd_db):
    truth = oscd_db["truth"][16]
    plain = _create(learn_store, oscd_db, model_kind="rbf_svm")
    ctx = _create(learn_store, oscd_db, model_kind="rbf_svm", params={"spatial_context": 0.3})
    assert ctx.params.spatial_context == 0.3 and plain.params.spatial_context == 0.0
    for s in (plain, ctx):
        _seed_labels(s, truth)
    r0 = plain.run_round()
    r1 = ctx.run_round()
    # the same labels and model: the context session's scores are the model's smoothed
    # over the Bordeaux grid (every patch has neighbours: they differ), then the answers
    grid = load_grid(learn_store, ctx.product_ids, 16, ctx.patch_ids)
    assert grid.shapes == ((32, 28),) and len(grid.row) == 896
    raw = r0.model.score(plain.data.X, plain.data.sq_norms)
    ids, y = ctx.labels()
    rows = ctx.data.rows(ids)
    np.testing.assert_array_equal(r0.scores, with_answers(raw.copy(), rows, y))
    want = with_answers(smooth(raw, grid, 0.3), rows, y)
    np.testing.assert_allclose(r1.scores, want, atol=1e-6)
    assert np.abs(r1.scores - r0.scores).max() > 0.01
    _answer(ctx, r1.query_ids, truth)
    r2 = ctx.run_round()
    again = Session.open(learn_store, ctx.session_id)
    assert again.params.spatial_context == 0.3
    np.testing.assert_array_equal(again.current_scores(), r2.scores)


def test_a_session_with_a_bad_context_is_refused(learn_store, oscd_db):
    with pytest.raises(SessionError, match=r"spatial_context must be in \[0, 0.9\]"):
        _create(learn_store, oscd_db, params={"spatial_context": -0.1})


def test_cli_spatial_context(learn_store, oscd_db, tmp_path, capsys):
    from tests.cli.process import in_process

    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    base = create_args(db, oscd_db)
    r = run([*base, "--spatial-context", "0.3"], tmp_path / "ws")
    assert r.returncode == 0, r.stderr
    from eominer.store import open_store

    with open_store(db) as store:
        assert Session.open(store, r.stdout.strip()).params.spatial_context == 0.3
    r = run([*base, "--spatial-context", "1.5"], tmp_path / "ws")
    assert r.returncode == 2 and "--spatial-context" in r.stderr and "0<=x<=0.9" in r.stderr


def test_cli_spread_on_the_map(learn_store, oscd_db, tmp_path, capsys):
    """`session create --spatial-weight`: 0 (off) by default, any W >= 0 given;
    negative refused by the CLI and by SessionParams."""
    from eominer.store import open_store
    from tests.cli.process import in_process

    db = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    base = create_args(db, oscd_db)
    weights = []
    for extra in ([], ["--spatial-weight", "1"], ["--spatial-weight", "2.5"]):
        r = run([*base, *extra], tmp_path / "ws")
        assert r.returncode == 0, r.stderr
        with open_store(db) as store:
            weights.append(Session.open(store, r.stdout.strip()).params.spatial_weight)
    assert weights == [0.0, 1.0, 2.5]
    r = run([*base, "--spatial-weight", "-1"], tmp_path / "ws")
    assert r.returncode == 2 and "--spatial-weight" in r.stderr and "x>=0" in r.stderr
    with open_store(db) as store, pytest.raises(SessionError,
                                                match="spatial_weight must be a finite"):
        _create(store, oscd_db, params={"spatial_weight": float("nan")})
