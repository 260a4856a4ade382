"""compute/apply.py and `eominer apply`: a saved classifier scores the archive on a real
local Ray. Annotations equal the session's own scores; selections by product, WHERE and
AOI keep what SQL keeps; a killed job resumes without duplicates; a product ingested and
extracted after the model was saved is scored as the model scores it in-process; bad
input is refused before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from compute.apply import run_apply
from compute.runtime import ray_session
from eominer.errors import ConfigError, FeatureError, ReadOnlySQLError, UserSQLError
from eominer.learning.saved import load_model
from eominer.learning.session import Session
from eominer.store import open_store
from tests.cli.process import in_process
from tests.compute.jobcli import cli_code
from tests.learning.sessions import _trained, answered

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray():
    """One local Ray for the module: every job joins it (a start costs seconds)."""
    with ray_session(num_cpus=2) as r:
        yield r


def applied(store, model_id: str) -> dict[int, tuple[float, bool]]:
    rows = store.query("SELECT patch_id, score, positive FROM annotations "
                       "WHERE model_version = ? AND source = 'apply'", (model_id,))
    out = {int(r[0]): (float(r[1]), bool(r[2])) for r in rows}
    assert len(out) == len(rows)  # one row per patch
    return out


def nothing_applied(store) -> bool:
    return (store.query("SELECT COUNT(*) FROM jobs")[0][0] == 0
            and store.query("SELECT COUNT(*) FROM annotations")[0][0] == 0)


@pytest.fixture
def model(learn_store, oscd_db):
    s = _trained(learn_store, oscd_db)
    return s, s.save_model()


# ---- kill and resume (first: its subprocess starts a Ray of its own) ----------------------
def test_a_killed_job_resumes_without_duplicates(learn_store, oscd_db, model, ray, tmp_path):
    s, mid = model
    ranking, labels = s.current_scores(), s.round_labels(s.rounds()[-1])
    scores = dict(zip(s.patch_ids.tolist(), ranking.tolist()))
    url = learn_store.url
    learn_store.close()
    log = tmp_path / "progress.jsonl"
    # commit after every block, so that the kill lands between commits of this small job
    proc = subprocess.Popen(
        [sys.executable, "-c", cli_code(0.0), "apply", mid, "--products", oscd_db["product"],
         "--block-patches", "16", "--workers", "1", "--num-cpus", "1", "--db", url,
         "--progress-log", str(log)], env=dict(os.environ), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().splitlines():
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    os.killpg(proc.pid, signal.SIGSTOP)  # frozen mid-job, then killed hard
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    with open_store(url) as store:
        status = store.tasks()["status"].to_pylist()
        done_before = status.count("done")
        assert len(status) == 896 // 16 and 1 <= done_before < len(status)
        partial = applied(store, mid)
        assert len(partial) == 16 * done_before  # done means its rows are there
        report = run_apply(store, mid, [oscd_db["product"]], block_patches=16)
        assert not report.failed and report.tasks_skipped == done_before
        assert report.tasks_done == len(status) - done_before
        rows = applied(store, mid)
        n, distinct = store.query("SELECT COUNT(*), COUNT(DISTINCT patch_id) FROM annotations"
                                  )[0]
        assert n == distinct == len(rows) == 896
        # the model's scores: with the session's answers over them, its ranking
        got = np.asarray([rows[p][0] for p in scores])
        assert np.abs(answered(s, got, labels) - ranking).max() < 1e-5


# ---- the session's products ---------------------------------------------------------------
def test_apply_writes_the_sessions_scores(learn_store, oscd_db, model, ray, tmp_path, capsys):
    s, mid = model
    ranking, labels = s.current_scores(), s.round_labels(s.rounds()[-1])
    scores = dict(zip(s.patch_ids.tolist(), ranking.tolist()))
    url = learn_store.url
    learn_store.close()
    run = in_process(capsys)
    r = run(["apply", mid, "--products", oscd_db["product"], "--threshold", "0.6",
             "--block-patches", "100", "--workers", "2", "--db", url], tmp_path)
    assert r.returncode == 0, r.stderr
    with open_store(url) as store:
        rows = applied(store, mid)
        assert set(rows) == set(scores) and len(rows) == 896
        got = np.asarray([rows[p][0] for p in scores])
        # the session's ranking, answers included: at a labelled patch its answer, 1 or 0,
        # and "positive" as answered, not the model's in-sample score
        assert np.abs(got - ranking).max() < 1e-5
        ids, y = labels
        assert [rows[int(p)] for p in ids] == [(1.0, True) if v == 1 else (0.0, False)
                                               for v in y]
        n_pos = sum(pos for _, pos in rows.values())
        assert n_pos == int((got >= np.float32(0.6)).sum()) > 0
        assert f"{len(rows)} annotations from apply, {n_pos} positive (score >= 0.6)" in r.stdout
        (label, sid) = store.query("SELECT DISTINCT label_name, session_id FROM annotations")[0]
        assert (label, sid) == ("new_construction", s.session_id)
        tasks = store.tasks().to_pylist()
        assert len(tasks) == 9 and {t["status"] for t in tasks} == {"done"}
        assert {t["kind"] for t in tasks} == {"apply"}
        # the same command again: every block already done, nothing written twice
        again = run_apply(store, mid, [oscd_db["product"]], block_patches=100)
        assert again.tasks_done == 0 and again.tasks_skipped == 9
        assert store.query("SELECT COUNT(*) FROM annotations")[0][0] == 896


def test_apply_in_this_process_writes_the_same_scores(learn_store, oscd_db, model, tmp_path,
                                                     capsys):
    """`apply --workers 0`: no Ray; the blocks run in the command's process (their store
    reads too) and write what the Ray job writes: the session's ranking. With no
    --threshold, `positive` is at the threshold the session was published at."""
    s, mid = model
    scores = dict(zip(s.patch_ids.tolist(), s.current_scores().tolist()))
    assert s.publish(0.35) == mid  # the saved model now says 0.35 (it said 0.5)
    assert any(0.35 <= v < 0.5 for v in scores.values())
    url = learn_store.url
    learn_store.close()
    r = in_process(capsys)(["apply", mid, "--products", oscd_db["product"],
                            "--block-patches", "100", "--workers", "0", "--db", url], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "9 task(s) run in this process, 0 already done, 0 failed" in r.stdout
    with open_store(url) as store:
        rows = applied(store, mid)
        assert set(rows) == set(scores)
        assert max(abs(rows[p][0] - v) for p, v in scores.items()) < 1e-5
        assert all(pos == (v >= np.float32(0.35)) for v, pos in rows.values())
        assert {t["worker"] for t in store.tasks().to_pylist()} == {
            f"{os.uname().nodename}:{os.getpid()}"}


def test_a_context_model_writes_the_sessions_smoothed_scores(learn_store, oscd_db, ray):
    """A model from a session with spatial context scores as the session ranked: bands of
    grid rows, each smoothed with its halo, give the whole product's smoothed scores."""
    s = _trained(learn_store, oscd_db, params={"spatial_context": 0.3})
    mid = s.save_model()
    pid = oscd_db["product"]
    scores = dict(zip(s.patch_ids.tolist(), s.current_scores().tolist()))
    report = run_apply(learn_store, mid, [pid], block_patches=100)
    per_row = learn_store.query("SELECT COUNT(*) FROM patches WHERE level = 16 AND row = 0 "
                                "AND product_id = ?", (pid,))[0][0]
    assert report.tasks_done == -(-896 // (100 // per_row * per_row)) > 1
    assert not report.failed and report.n_selected == 896
    assert "spatial context 0.3: blocks are bands of grid rows" in report.notes[0]
    assert "13 rows on either side" in report.notes[0]
    rows = applied(learn_store, mid)
    assert set(rows) == set(scores) and len(rows) == 896
    got = np.asarray([rows[p][0] for p in scores])
    assert np.abs(answered(s, got) - np.asarray(list(scores.values()))).max() < 1e-5
    # not the patch-by-patch scores: the smoothing moved them
    standardised = s.data.rows_f32(np.arange(len(s.patch_ids)))
    raw = load_model(learn_store, mid).scorer.estimator.score(standardised)
    assert np.abs(got - raw).max() > 0.05

    # a selection smooths inside itself: a patch's neighbours outside it do not count
    learn_store.execute("DELETE FROM annotations")
    run_apply(learn_store, mid, [pid], where="row < 5")
    part = applied(learn_store, mid)
    inside = {r[0] for r in learn_store.query(
        "SELECT patch_id FROM scope_rows WHERE level = 16 AND row < 5 AND product_id = ?",
        (pid,))}
    assert set(part) == inside and 0 < len(inside) < 896
    edge = [r[0] for r in learn_store.query(
        "SELECT patch_id FROM patches WHERE level = 16 AND row = 4 AND product_id = ?", (pid,))]
    assert max(abs(part[p][0] - rows[p][0]) for p in edge) > 1e-4


def test_a_model_with_a_prior_writes_the_sessions_mixed_scores(learn_store, oscd_db, ray):
    """The prior (learning/prior.py) is mixed per patch before the context smoothing, in
    the session and in apply alike."""
    s = _trained(learn_store, oscd_db, params={"spatial_context": 0.3, "prior": "absdiff_b04"})
    mid = s.save_model()
    scores = dict(zip(s.patch_ids.tolist(), s.current_scores().tolist()))
    report = run_apply(learn_store, mid, [oscd_db["product"]], block_patches=300)
    assert not report.failed and report.n_selected == 896 and report.tasks_done > 1
    rows = applied(learn_store, mid)
    got = np.asarray([rows[p][0] for p in scores])
    assert np.abs(answered(s, got) - np.asarray(list(scores.values()))).max() < 1e-5
    assert load_model(learn_store, mid).params["prior"]["weight"] == pytest.approx(
        4.0 * 20 / (20 + s.rounds()[-1].n_labels))


def test_bands_with_their_halo_smooth_as_the_whole_grid():
    """The halo claim, exactly: on a grid with holes, each band's kept scores equal the
    whole grid's smoothing; without the halo they do not."""
    from compute.apply import context_bands, halo_rows, score_band_in_context
    from eominer.learning.context import PatchGrid, smooth

    rng = np.random.default_rng(3)
    rr, cc = np.divmod(np.arange(60 * 7), 7)
    present = rng.random(len(rr)) > 0.15  # a WHERE that keeps 85 %
    ids = np.flatnonzero(present).astype(np.int64) + 1000
    rows, cols = rr[present], cc[present]
    s = rng.random(len(ids)).astype(np.float32)
    whole = dict(zip(ids.tolist(), smooth(s, PatchGrid.from_cells(
        np.zeros(len(ids)), rows, cols), 0.3).tolist()))
    at = {p: k for k, p in enumerate(ids.tolist())}

    def by_bands(halo: int) -> dict[int, float]:
        out = {}
        bands = context_bands(ids, rows, 30, halo)
        assert all(len(kept) <= 30 for kept, _ in bands)
        assert sorted(np.concatenate([k for k, _ in bands]).tolist()) == ids.tolist()
        for kept, around in bands:
            both = np.r_[kept, around]
            k = np.array([at[p] for p in both.tolist()])
            got = score_band_in_context(lambda x: x[:, 0], both, s[k][:, None], rows[k],
                                        cols[k], np.isin(both, kept), 0.3)
            out.update(zip(got[0].tolist(), got[1].tolist()))
        return out

    h = halo_rows(0.3)
    assert h == 13
    exact = by_bands(h)
    assert max(abs(exact[p] - whole[p]) for p in whole) < 1e-7
    alone = by_bands(0)
    assert max(abs(alone[p] - whole[p]) for p in whole) > 1e-2
    # a row longer than the block is a band of its own; nothing selected, no band
    assert [len(k) for k, _ in context_bands(ids[:20], rows[:20], 3, h)] == [
        int((rows[:20] == r).sum()) for r in np.unique(rows[:20])]
    assert context_bands(ids[:0], rows[:0], 30, h) == []


def test_where_and_aoi_keep_what_sql_keeps(learn_store, oscd_db, model, ray, tmp_path):
    _, mid = model
    pid = oscd_db["product"]
    report = run_apply(learn_store, mid, where="row < 5 AND col >= 3", block_patches=64)
    expected = {r[0] for r in learn_store.query(
        "SELECT patch_id FROM scope_rows WHERE level = 16 AND row < 5 AND col >= 3 "
        "AND product_id = ?", (pid,))}
    assert set(applied(learn_store, mid)) == expected and report.n_selected == len(expected)
    assert 0 < len(expected) < 896
    # the other date has no features of the model's set: not named, so skipped and noted
    assert report.products == [pid]
    assert report.notes[0].startswith(f"skipped: products {oscd_db['product2']} have no")

    learn_store.execute("DELETE FROM annotations")
    x0, y0, x1, y1 = learn_store.query(
        "SELECT MIN(min_lon), MIN(min_lat), MAX(max_lon), MAX(max_lat) FROM patches "
        "WHERE product_id = ? AND level = 16", (pid,))[0]
    a = (x0 + 0.3 * (x1 - x0), y0 + 0.2 * (y1 - y0), x0 + 0.6 * (x1 - x0), y0 + 0.7 * (y1 - y0))
    aoi = tmp_path / "area.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
            [a[0], a[1]], [a[2], a[1]], [a[2], a[3]], [a[0], a[3]], [a[0], a[1]]]]}}]}))
    run_apply(learn_store, mid, [pid], aoi=str(aoi), block_patches=64)
    # a rectangle meets a patch's box exactly when their extents overlap
    expected = {r[0] for r in learn_store.query(
        "SELECT patch_id FROM patches WHERE level = 16 AND product_id = ? AND max_lon >= ? "
        "AND min_lon <= ? AND max_lat >= ? AND min_lat <= ?", (pid, a[0], a[2], a[1], a[3]))}
    assert set(applied(learn_store, mid)) == expected and 0 < len(expected) < 896


# ---- bad input: refused before anything is written ----------------------------------------
def test_bad_input_is_refused_before_anything_is_written(learn_store, oscd_db, model):
    s, mid = model
    p1, p2 = oscd_db["product"], oscd_db["product2"]
    fs = oscd_db["fs"]
    cases = [
        (dict(model_id="3f2a91c0-r9-00000000"), ConfigError,
         rf"model '3f2a91c0-r9-00000000' is not in .*saved classifiers: {mid}\)"),
        (dict(product_ids=[p2]), FeatureError,
         rf"products {p2} have no features of set {fs} at level 16: run `eominer extract "
         rf"--features oscd_pair_stats --products {p2}` first"),
        (dict(product_ids=["S2X_NOPE"]), ConfigError, "S2X_NOPE not in the database"),
        (dict(where="cloud_fraction > 2"), ConfigError,
         r"nothing to apply model .*WHERE 'cloud_fraction > 2'\) keeps no patch at level 16"),
        (dict(where="no_such_column > 1"), UserSQLError, r"over scope_rows.*no_such_column"),
        (dict(where="(SELECT COUNT(*) FROM read_csv('/etc/passwd')) > 0"),
         ReadOnlySQLError, "local files"),
        (dict(where="1 = 1; DROP TABLE annotations"), ReadOnlySQLError, "one statement"),
        (dict(threshold=1.5), ConfigError, r"threshold must be a score in \[0, 1\], got 1.5"),
    ]
    for kwargs, error, match in cases:
        args = {"model_id": mid, **kwargs}
        with pytest.raises(error, match=match):
            run_apply(learn_store, args.pop("model_id"), **args)
        assert nothing_applied(learn_store), kwargs
    # every product by default: p2, without the model's features, is skipped, not an error
    # (planning only, no Ray: see the report's note)
    from compute.apply import ApplyReport, plan

    report = ApplyReport("plan")
    blocks = plan(learn_store, load_model(learn_store, mid), None, None, None, 1000, report)
    assert [b.product_id for b in blocks] == [p1] and "skipped: products" in report.notes[0]

    # the same descriptor re-extracted with other parameters for p2: refused, with why
    other = learn_store.register_feature_set("oscd_pair_stats", 1, {"pair": "other"},
                                             learn_store.feature_set(fs).columns, "S2")
    t = learn_store.patches(p2, 16)
    learn_store.write_features(other, t["patch_id"].to_numpy(),
                               np.zeros((t.num_rows, other.dims), np.float32))
    with pytest.raises(FeatureError, match=rf"extracted with other parameters "
                       rf"\({other.feature_set_id}: {{'pair': 'other'}}, the model's: "
                       r"{'pair': 'test'}\), which the model refuses"):
        run_apply(learn_store, mid, [p2])
    # the model's own feature set gone (deleted, or re-extracted under a new id)
    learn_store.execute("DELETE FROM feature_sets WHERE feature_set_id = ?", (fs,))
    with pytest.raises(FeatureError, match=rf"feature set {fs} of model {mid} is not in"):
        run_apply(learn_store, mid, [p1])
    learn_store.execute("DELETE FROM annotations")
    assert nothing_applied(learn_store)


# ---- a product that arrives after the model --------------------------------------------
def test_a_product_ingested_after_the_model_is_scored_as_in_process(
        base_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray, capsys,
        shared_data: Path):
    from compute.extract import run_extract
    from eominer.ingest import ingest_paths

    home = tmp_path / "ws"
    shutil.copytree(base_db, home)
    monkeypatch.setenv("EOMINER_HOME", str(home))
    url = f"duckdb:///{home / 'base.duckdb'}"
    with open_store(url) as store:
        store.execute("UPDATE products SET ard_path = REPLACE(ard_path, ?, ?)",
                      (str(base_db), str(home)))
        first, second = [p.product_id for p in store.product_list()
                         if "T30TXQ" in p.product_id][:2]
        store.delete_product(second)  # this one arrives later
        ex = run_extract(store, "spectral", [first])
        assert not ex.failed
        ((fs, _),) = ex.feature_sets
        s = Session.create(store, "green", "ana", "green_urban", [first], 32, [fs],
                           model_kind="logistic")
        # a concept the features can show: the greenest patches
        ids, X, names = store.read_features([fs], [first], 32)
        col = X[:, names.index(f"{fs}__ndvi_mean")]
        order = np.argsort(col)
        for p in ids[order[-4:]]:
            s.label(int(p), 1, "ana")
        for p in ids[order[: len(order) // 2: 20]]:
            s.label(int(p), -1, "ana")
        s.run_round()
        mid = s.save_model()

        (r,) = ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_2"])
        assert r.product_id == second
        with pytest.raises(FeatureError, match=rf"products {second} have no features of set "
                           rf"{fs} at level 32: run `eominer extract --features spectral"):
            run_apply(store, mid, [second])
        assert not run_extract(store, "spectral", [second]).failed
        url = store.url
    run = in_process(capsys)
    res = run(["apply", mid, "--products", second, "--db", url], tmp_path)
    assert res.returncode == 0, res.stderr
    with open_store(url) as store:
        rows = applied(store, mid)
        ids2, X2, _ = store.read_features([fs], [second], 32)
        assert len(ids2) == store.patches(second, 32).num_rows == len(rows) > 0
        expected = load_model(store, mid).score(X2)
        got = np.asarray([rows[int(p)][0] for p in ids2])
        assert np.abs(got - expected).max() < 1e-5
        assert sum(pos for _, pos in rows.values()) == int((got >= np.float32(0.5)).sum())
