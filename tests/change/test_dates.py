"""The features of both dates (eominer.change.dates, `eominer change --features`) on real
OSCD pairs: the rows by hand and as the evaluation builds them, the session's default
sets, the refusals, and a first date of two pairs through a removal. Paris' third date
is its second date's bands under a later date's file names (a copy, said here)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from eominer.cli import main

LEVEL = 32


@pytest.fixture
def paris_bercy(oscd, db_url, capsys) -> dict:
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    with open_store(db_url) as store:
        ids = {c: [r.product_id for r in ingest_paths(
            store, [oscd / "images" / c / "imgs_1", oscd / "images" / c / "imgs_2"],
            levels=(LEVEL,))] for c in ("paris", "bercy")}
    main(["extract", "--features", "spectral", "--workers", "0", "--db", db_url])
    capsys.readouterr()
    return ids


def test_both_dates_by_hand_as_the_evaluation_builds_them_and_the_default_sets(
        paris_bercy, db_url, capsys):
    from eominer.evaluation import tasks
    from eominer.store import open_store

    (p1, p2), (b1, b2) = paris_bercy["paris"], paris_bercy["bercy"]
    # a set one date lacks, two dates of two places: refused before any map is made (the
    # same check, before --pairs and --consecutive jobs, names the products that lack it)
    main(["extract", "--features", "gabor", "--products", p1, "--workers", "0", "--db",
          db_url])
    with pytest.raises(SystemExit, match="^1$"):
        main(["change", p1, p2, "--method", "cva", "--features", "spectral,gabor", "--db",
              db_url])
    assert (f"{p2} have no gabor features (gabor_v1_8f04998ddf): run `eominer extract "
            f"--features gabor --products {p2}` first") in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^1$"):
        main(["change", p1, b2, "--method", "cva", "--features", "spectral", "--db", db_url])
    assert f"{p1} and {b2} are not on one grid" in capsys.readouterr().err
    with open_store(db_url) as store:
        assert store.pairs(kind="change").num_rows == 0
    main(["change", "--consecutive", "--method", "cva", "--features", "spectral",
          "--workers", "0", "--db", db_url])
    out = capsys.readouterr().out
    assert "features of both dates: dates_spectral_v1_" in out and "of 2 pair(s)" in out
    with open_store(db_url) as store:
        spectral = store.feature_sets("spectral")[0]
        dates = store.feature_sets("dates_spectral")[0]
        k = len(spectral.columns)
        ids, X, _ = store.read_features([dates.feature_set_id], [p1], LEVEL)
        # by hand, one patch: the same window of the second date, and the difference
        row = 7
        t = store.patches(p1, LEVEL).to_pylist()
        at = next(r for r in t if r["patch_id"] == ids[row])
        twin = next(r["patch_id"] for r in store.patches(p2, LEVEL).to_pylist()
                    if (r["x_off"], r["y_off"]) == (at["x_off"], at["y_off"]))
        _, one, _ = store.read_features([spectral.feature_set_id], [p1], LEVEL)
        _, two, _ = store.read_features([spectral.feature_set_id], [p2], LEVEL)
        ids2 = store.read_features([spectral.feature_set_id], [p2], LEVEL)[0].tolist()
        a, b = one[row], two[ids2.index(twin)]
        np.testing.assert_array_equal(X[row], np.concatenate([a, b, b - a]))
        assert X.shape[1] == 3 * k and dates.columns[k] == f"{spectral.columns[0]}_t2"
        # the evaluation's `pair_spectral` of the same pairs: the same rows
        pairs = [(p1, p2), (b1, b2)]
        pair_set = tasks.pair_feature_set(store, spectral, pairs, LEVEL)
        for first in (p1, b1):
            e_ids, e_X, _ = store.read_features([pair_set.feature_set_id], [first], LEVEL)
            d_ids, d_X, _ = store.read_features([dates.feature_set_id], [first], LEVEL)
            np.testing.assert_array_equal(d_ids, e_ids)
            np.testing.assert_array_equal(d_X, e_X)
        store.drop_feature_set(pair_set.feature_set_id)
        # a session over both first dates: both dates rather than the first date's alone
        names = sorted(store.feature_set(f).name for f in store.covering_feature_sets(
            [p1, b1], LEVEL))
        assert names == ["archive_change_cva", "archive_diff_tails", "dates_spectral"]


def test_a_first_date_of_two_pairs_keeps_the_last_and_gets_the_other_back(
        paris_bercy, oscd, db_url, tmp_path, capsys):
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    (p1, p2), _ = paris_bercy["paris"], paris_bercy["bercy"]
    import rasterio

    later = tmp_path / "imgs_3"  # Paris' second date named a year later, its red brighter
    later.mkdir()
    for f in (oscd / "images" / "paris" / "imgs_2").glob("*.tif"):
        shutil.copy(f, later / f.name.replace("20171107", "20181107"))
    with rasterio.open(next(later.glob("*_B04.tif")), "r+") as red:
        red.write(red.read() + 300)
    with open_store(db_url) as store:
        p3 = ingest_paths(store, [later], levels=(LEVEL,))[0].product_id
    main(["extract", "--features", "spectral", "--workers", "0", "--db", db_url])
    main(["change", p1, p2, "--method", "cva", "--features", "spectral", "--db", db_url])
    with open_store(db_url) as store:
        fid = store.feature_sets("dates_spectral")[0].feature_set_id
        with_p2 = store.read_features([fid], [p1], LEVEL)
    main(["change", p1, p3, "--method", "cva", "--db", db_url])  # no --features: kept up
    capsys.readouterr()
    with open_store(db_url) as store:
        assert store.last_change_pair(p1) == (p1, p3)
        ids, X, _ = store.read_features([fid], [p1], LEVEL)
        np.testing.assert_array_equal(ids, with_p2[0])
        assert not np.array_equal(X, with_p2[1])  # date 2 is p3 now (its brighter red)
    main(["products", "remove", p3, "--yes", "--db", db_url])
    out = capsys.readouterr().out
    assert f"took the rows of {p1} in {fid} from its other pair instead ({p1} -> {p2})" in out
    with open_store(db_url) as store:
        ids, X, _ = store.read_features([fid], [p1], LEVEL)
        np.testing.assert_array_equal(ids, with_p2[0])
        np.testing.assert_array_equal(X, with_p2[1])  # p1 -> p2's rows, as they were
    main(["products", "remove", p2, "--yes", "--db", db_url])
    out = capsys.readouterr().out
    assert f"took the rows of {p1} (mapped with it by eominer change) out of {fid}" in out
    with open_store(db_url) as store:
        assert store.feature_set(fid) is not None
        assert store.read_features([fid], [p1], LEVEL)[0].size == 0
