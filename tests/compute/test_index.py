"""The archive-wide nearest-neighbour index (eominer.learning.ann, compute/index.py) on the
real OSCD Bordeaux store: both dates' real pair statistics at level 16, one shard per
product built by runner tasks on a local Ray; answers compared with a numpy brute force
over every row in the index's own standardised space; resume, a new product, errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compute.index import load_features, plan_index, run_index, shard_file
from eominer.errors import ConfigError, SearchError
from eominer.learning import ann
from tests.cli.process import in_process

pytestmark = pytest.mark.ray
LEVEL = 16


@pytest.fixture
def two_dates(learn_store, oscd_db):
    """Features for the second date too (its own real statistics: date 2 against date 1),
    so the index has two product shards."""
    from eominer.evaluation.patches import pair_stats
    from eominer.io.ard import read_ard

    store = learn_store
    fs = store.require_feature_set(oscd_db["fs"])
    p1, p2 = sorted(p.product_id for p in store.product_list())
    a1, a2 = (read_ard(store.product(p).ard_path) for p in (p1, p2))
    t = store.patches(p2, LEVEL)
    order = t["row"].to_numpy() * (a2.shape[2] // LEVEL) + t["col"].to_numpy()
    store.write_features(fs, t["patch_id"].to_numpy(), pair_stats(a2, a1, LEVEL)[order])
    return store, fs, (p1, p2)


def brute_force(store, fs, manifest, like, k):
    ids, X, _ = store.read_features([fs.feature_set_id],
                                    [p.product_id for p in store.product_list()], LEVEL)
    Z = ann.standardise(X, np.asarray(manifest.mean), np.asarray(manifest.std)).astype(np.float64)
    centre = Z[np.isin(ids, like)].mean(axis=0)
    d2 = ((Z - centre) ** 2).sum(axis=1)
    d2[np.isin(ids, like)] = np.inf
    order = np.lexsort((ids, d2))[:k]
    return ids[order], d2[order], ids, X


def test_index_answers_like_a_brute_force_and_grows_by_products(two_dates):
    store, fs, (p1, p2) = two_dates
    # first only date 1, as an archive that grows: then date 2 is a new product
    r1 = run_index(store, fs.feature_set_id, LEVEL, product_ids=[p1], num_cpus=2)
    assert (r1.tasks_done, r1.tasks_skipped, r1.failed) == (1, 0, [])
    folder = ann.index_dir(store, fs.feature_set_id, LEVEL)
    first = ann.read_manifest(folder)
    r2 = run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    assert (r2.tasks_done, r2.tasks_skipped) == (1, 1)  # only the new product's shard
    m = ann.read_manifest(folder)
    assert m.mean == first.mean and m.std == first.std  # the statistics stay comparable
    counts = {p: len(store.feature_patch_ids(fs, p)) for p in (p1, p2)}
    n16 = {p: store.patches(p, LEVEL).num_rows for p in (p1, p2)}
    assert {p: e["n"] for p, e in m.shards.items()} == n16 == {
        p: int(np.isin(store.feature_patch_ids(fs, p), store.patches(p, LEVEL)["patch_id"]
                       .to_numpy()).sum()) for p in (p1, p2)}
    assert all(counts[p] >= n16[p] for p in counts)

    like = [int(i) for i in store.patches(p1, LEVEL)["patch_id"].to_numpy()[[40, 41, 95]]]
    got = ann.search_archive(store, like, fs.feature_set_id, top=50)
    want, d2, ids, X = brute_force(store, fs, first, like, 50)
    assert got.level == LEVEL and got.n_indexed == sum(n16.values())
    assert not set(like) & set(got.patch_ids.tolist())
    recall = len(set(got.patch_ids.tolist()) & set(want.tolist())) / 50
    assert recall >= 0.95, recall
    # distances are those of the float16 vectors: within float16 rounding of the truth
    common = np.isin(got.patch_ids, want)
    exact = dict(zip(want.tolist(), d2.tolist(), strict=True))
    rel = [abs(g ** 2 - exact[int(p)]) / max(exact[int(p)], 1e-9)
           for p, g in zip(got.patch_ids[common], got.distances[common], strict=True)]
    assert max(rel) < 0.02, max(rel)
    prod = {w.patch_id: w.product_id for w in store.patch_windows(got.patch_ids)}
    assert got.table(store)["product_id"].to_pylist() == [prod[int(p)] for p in got.patch_ids]
    # a query from date 2's side finds date 2's patches: both shards answer
    like2 = [int(i) for i in store.patches(p2, LEVEL)["patch_id"].to_numpy()[[40, 41]]]
    got2 = ann.search_archive(store, like2, fs.feature_set_id, top=50)
    want2 = brute_force(store, fs, first, like2, 50)[0]
    assert len(set(got2.patch_ids.tolist()) & set(want2.tolist())) / 50 >= 0.95
    assert {prod2 for prod2 in got2.table(store)["product_id"].to_pylist()} >= {p2}
    # the statistics are those of every row of the level at the first build (both dates)
    X64 = X.astype(np.float64)
    sd = X64.std(axis=0)
    assert np.abs((np.asarray(first.mean) - X64.mean(axis=0)) / sd).max() < 1e-4
    assert np.abs(np.asarray(first.std) / sd - 1).max() < 1e-4


def test_a_killed_build_resumes_and_rebuild_restarts(two_dates):
    store, fs, (p1, p2) = two_dates
    run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    folder = ann.index_dir(store, fs.feature_set_id, LEVEL)
    (folder / f"{p2}.usearch").unlink()  # as if the job died before that shard's file
    r = run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    assert (r.tasks_done, r.tasks_skipped) == (1, 1)
    assert (folder / f"{p2}.usearch").exists()
    r = run_index(store, fs.feature_set_id, LEVEL, num_cpus=2, rebuild=True)
    assert (r.tasks_done, r.tasks_skipped) == (2, 0)
    mean, std, n = store.column_stats(fs, LEVEL)
    m = ann.read_manifest(folder)
    assert n == sum(e["n"] for e in m.shards.values())
    np.testing.assert_allclose(m.mean, mean)  # recomputed over both dates
    assert not list(folder.glob(".*"))  # no temporary file left


def test_bad_input_is_explicit(two_dates, tmp_path):
    store, fs, (p1, _) = two_dates
    like = [int(store.patches(p1, LEVEL)["patch_id"].to_numpy()[0])]
    with pytest.raises(SearchError, match=r"no index of feature set .* build it with "
                                          r"`eominer index build"):
        ann.search_archive(store, like, fs.feature_set_id)
    empty = store.register_feature_set("never_extracted", 1, {}, ["a"])
    with pytest.raises(ConfigError, match="no product has never_extracted.* features at "
                                          "level 16: run `eominer extract` first"):
        run_index(store, empty.feature_set_id, LEVEL, num_cpus=2)
    # a level the grid does not have: no extract would make it
    with pytest.raises(ConfigError, match=r"no product has patches at level 64: choose "
                                          r"--level among the grid's levels \[16, 32\]"):
        run_index(store, fs.feature_set_id, 64, num_cpus=2)
    with pytest.raises(ConfigError, match=r"product\(s\) nope have no"):
        run_index(store, fs.feature_set_id, LEVEL, product_ids=["nope"], num_cpus=2)
    run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    with pytest.raises(SearchError, match=r"example patch\(es\) \[999999999\] are not in"):
        ann.search_archive(store, [999999999], fs.feature_set_id)
    coarse = int(store.patches(p1, 32)["patch_id"].to_numpy()[0])
    with pytest.raises(SearchError, match=r"no index of feature set .* at level 32 \(the "
                       r"example patches' level\): build it .*; it is indexed at level\(s\) "
                       rf"{LEVEL}: give examples of one of those"):
        ann.search_archive(store, [coarse], fs.feature_set_id)
    folder = ann.index_dir(store, fs.feature_set_id, LEVEL)
    (folder / ann.MANIFEST).write_text("{not json")
    with pytest.raises(SearchError, match="unreadable .* --rebuild"):
        ann.search_archive(store, like, fs.feature_set_id)


def test_cli_builds_and_searches_the_archive(two_dates, capsys, tmp_path):
    run = in_process(capsys)
    store, fs, (p1, _) = two_dates
    url = store.url
    like = [int(i) for i in store.patches(p1, LEVEL)["patch_id"].to_numpy()[[7, 8]]]
    # by the set's name (one set has it), as a user types it
    r = run(["index", "build", fs.name, "--level", str(LEVEL), "--db", url,
                    "--num-cpus", "2"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 shard(s) built, 0 already there, 0 failed" in r.stdout + r.stderr
    assert f"index in {ann.index_dir(store, fs.feature_set_id, LEVEL)}" in r.stdout + r.stderr
    r = run(["search", "--like", ",".join(map(str, like)), "--archive", "--features",
                    fs.name, "--top", "20", "--format", "json", "--db", url], tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    want = ann.search_archive(store, like, fs.feature_set_id, top=20)
    assert [row["patch_id"] for row in rows] == want.patch_ids.tolist()
    assert "patches indexed at level 16" in r.stderr
    r = run(["search", "--like", str(like[0]), "--archive", "--features",
                    fs.feature_set_id, "--save", "--db", url], tmp_path)
    assert r.returncode != 0 and "--archive results are not saved" in r.stdout + r.stderr


def test_archive_search_under_a_where_and_an_area_equals_brute_force(two_dates, monkeypatch,
                                                                      capsys, tmp_path):
    """--where / --aoi on the archive: the kept patches only, ranked as a brute force over
    them (exactly over the index's own float16 vectors when few are kept; from the graph,
    over-fetched and filtered, when many are)."""
    from shapely.geometry import box

    from eominer.learning.aoi import AOI, boxes_in_aoi
    from tests.learning.test_scope_area import _geojson

    store, fs, (p1, p2) = two_dates
    # the shards built here, by the index job's own task function (the job on Ray is
    # tested above; this test is about the query)
    folder, m, tasks = plan_index(store, fs.feature_set_id, LEVEL)
    load = load_features(fs.feature_set_id, LEVEL)
    for t in tasks:
        pid, n = t.fn(*load(store, t))
        m.shards[pid] = ann.shard_entry(shard_file(pid), n)
    ann.write_manifest(folder, m)
    like = [int(i) for i in store.patches(p1, LEVEL)["patch_id"].to_numpy()[[40, 41, 95]]]
    _, _, ids, X = brute_force(store, fs, m, like, 1)
    t = store.query_arrow("SELECT patch_id, valid_fraction, min_lon, min_lat, max_lon, max_lat "
                          "FROM patches WHERE level = ? ORDER BY patch_id", (LEVEL,))
    at = np.searchsorted(t["patch_id"].to_numpy(), ids)
    col = {c: t[c].to_numpy()[at] for c in t.column_names}
    lon0, lat0, lon1, lat1 = (np.quantile(col[c], q) for c, q in (
        ("min_lon", 0.1), ("min_lat", 0.1), ("max_lon", 0.8), ("max_lat", 0.8)))
    area = AOI(box(lon0, lat0, lon1, lat1), "test box")
    where = "patch_id % 3 <> 0 AND valid_fraction > 0.5"
    kept = ((ids % 3 != 0) & (col["valid_fraction"] > 0.5)
            & boxes_in_aoi(col["min_lon"], col["min_lat"], col["max_lon"], col["max_lat"],
                           area.geometry))
    assert 300 < kept.sum() < 0.7 * len(ids)  # a real filter, over both products
    assert {w.product_id for w in store.patch_windows(ids[kept])} == {p1, p2}
    Z = ann.standardise(X, np.asarray(m.mean), np.asarray(m.std))
    centre = Z[np.isin(ids, like)].astype(np.float64).mean(axis=0)
    Z16 = Z.astype(np.float16).astype(np.float64)  # what the graph holds
    d2 = ((Z16 - centre.astype(np.float32)) ** 2).sum(axis=1)
    d2[~kept | np.isin(ids, like)] = np.inf
    want = ids[np.lexsort((ids, d2))[:40]]
    got = ann.search_archive(store, like, fs.feature_set_id, top=40, where=where, aoi=area)
    assert got.patch_ids.tolist() == want.tolist()  # exact over the kept rows
    np.testing.assert_allclose(got.distances ** 2, np.sort(d2)[:40], rtol=1e-6)
    # many kept: over-fetched from the graph, then filtered (approximate: recall)
    monkeypatch.setattr(ann, "EXACT_WITHIN", 0)
    monkeypatch.setattr(ann, "OVERFETCH_MAX", 1)
    approx = ann.search_archive(store, like, fs.feature_set_id, top=40, where=where, aoi=area)
    assert np.isin(approx.patch_ids, ids[kept]).all()
    assert len(np.intersect1d(approx.patch_ids, want)) >= 38
    monkeypatch.undo()
    # a product filter: only that product's shard is searched
    in_p2 = np.isin(ids, store.patches(p2, LEVEL)["patch_id"].to_numpy())
    d2p = np.where(in_p2, d2, np.inf)
    only = ann.search_archive(store, like, fs.feature_set_id, top=40, where=where, aoi=area,
                              product_ids=[p2])
    assert only.patch_ids.tolist() == ids[np.lexsort((ids, d2p))[:40]].tolist()
    # the CLI: --where and --aoi with --archive
    path = _geojson(tmp_path / "a.geojson", [area.geometry])
    r = in_process(capsys)(["search", "--like", ",".join(map(str, like)), "--archive",
                            "--features", fs.feature_set_id, "--where", where, "--aoi",
                            str(path), "--top", "40", "--format", "json", "--db", store.url],
                           tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["patch_id"] for row in json.loads(r.stdout)] == want.tolist()
    assert "among those kept by the area of interest and the WHERE" in r.stderr


def test_an_index_older_than_its_features_is_refused_then_rebuilt(two_dates):
    """Date 2 re-extracted after the index was built (its features rewritten, recorded as
    a finished extract task, as the extract job does): searches refuse the index until
    `index build` rebuilds that product's shard, and only that one."""
    from eominer.evaluation.patches import pair_stats
    from eominer.io.ard import read_ard

    store, fs, (p1, p2) = two_dates
    extract_done = lambda pid: (store.schedule_tasks(  # noqa: E731
        "job-x", "extract", [{"task_id": f"extract/{fs.feature_set_id}/{pid}/0",
                              "product_id": pid, "feature_set_id": fs.feature_set_id,
                              "block": 0, "n_items": 1}]),
        store.finish_tasks([(f"extract/{fs.feature_set_id}/{pid}/0", "test")]))
    extract_done(p1)
    extract_done(p2)
    run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    folder = ann.index_dir(store, fs.feature_set_id, LEVEL)
    built = ann.read_manifest(folder)
    assert set(built.shards) == {p1, p2} and all(e["features"] for e in built.shards.values())
    like = [int(i) for i in store.patches(p1, LEVEL)["patch_id"].to_numpy()[[40, 41, 95]]]
    ann.search_archive(store, like, fs.feature_set_id, top=20)  # fresh: answers

    # re-extracted: date 2's features now compare it with a shifted copy of date 1
    a1, a2 = (read_ard(store.product(p).ard_path) for p in (p1, p2))
    t = store.patches(p2, LEVEL)
    order = t["row"].to_numpy() * (a2.shape[2] // LEVEL) + t["col"].to_numpy()
    store.write_features(fs, t["patch_id"].to_numpy(),
                         pair_stats(a2, a1 * 1.5, LEVEL)[order])
    store.execute("UPDATE jobs SET status = 'pending' WHERE product_id = ?", (p2,))
    extract_done(p2)
    with pytest.raises(SearchError, match=rf"older than the features of 1 product\(s\) \({p2}\)"
                                          rf".*eominer index build {fs.feature_set_id} "
                                          rf"--level {LEVEL}"):
        ann.search_archive(store, like, fs.feature_set_id, top=20)
    r = run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    assert (r.tasks_done, r.tasks_skipped) == (1, 1)  # date 2's shard only
    after = ann.read_manifest(folder)
    assert after.shards[p1] == built.shards[p1]
    assert after.shards[p2]["features"] > built.shards[p2]["features"]
    got = ann.search_archive(store, like, fs.feature_set_id, top=50)
    want = brute_force(store, fs, after, like, 50)[0]  # over the new features
    assert len(set(got.patch_ids.tolist()) & set(want.tolist())) / 50 >= 0.95


def test_a_shard_of_a_product_removed_while_it_is_built_is_not_kept(two_dates, monkeypatch):
    """`eominer products remove` lands while the job builds the product's shard: the
    shard's result is dropped in its commit, and its file goes with it (no manifest
    entry would name it)."""
    from eominer.removal import remove_products

    store, fs, (p1, p2) = two_dates
    check = store.existing_products

    def removed_just_before_the_check(ids):  # the worst moment: the shard file is written
        if p2 in ids and store.product(p2) is not None:
            remove_products(store, [p2])
        return check(ids)

    monkeypatch.setattr(store, "existing_products", removed_just_before_the_check)
    r = run_index(store, fs.feature_set_id, LEVEL, num_cpus=2)
    assert (r.tasks_done, r.failed) == (1, [])
    assert r.notes == [f"product {p2} was removed while the job ran: 1 index task(s) of "
                       "it were not written"]
    folder = ann.index_dir(store, fs.feature_set_id, LEVEL)
    assert set(ann.read_manifest(folder).shards) == {p1}
    assert sorted(f.name for f in folder.glob("*.usearch")) == [shard_file(p1)]
    assert store.product(p2) is None
