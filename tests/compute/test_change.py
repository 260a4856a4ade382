"""compute/change.py through `eominer change --pairs FILE`: pairs as Ray tasks (local Ray), the driver writes the DB;
a failed pair does not stop the others, and a re-run does only what is left."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from eominer.cli import main

pytestmark = pytest.mark.ray


def _patches_counted(job: str) -> float:
    from eominer.metrics import default_metrics

    text = default_metrics().exposition().decode()
    m = re.search(rf'eominer_patches_processed_total{{batch_job="{job}"}} (\S+)', text)
    return float(m.group(1)) if m else 0.0


@pytest.mark.parametrize("where", [["--num-cpus", "2", "--workers", "2"], ["--workers", "0"]],
                         ids=["ray", "in_process"])
def test_pairs_on_ray_record_each_pair_report_failures_and_resume(
        oscd, workspace, db_url, tmp_path, capsys, where) -> None:
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    base = oscd / "images" / "paris"
    with open_store(db_url) as store:
        res = ingest_paths(store, [base / "imgs_1", base / "imgs_2"], levels=(64,))
        n_patches = store.query("SELECT COUNT(*) FROM patches WHERE product_id = ?",
                                (res[0].product_id,))[0][0]
    # a pair of paths whose first date has a truncated band file
    bercy = tmp_path / "bercy"
    shutil.copytree(oscd / "images" / "bercy", bercy)
    band = next((bercy / "imgs_1").glob("*_B04.tif"))
    band.write_bytes(band.read_bytes()[:2000])
    f = tmp_path / "pairs.txt"
    f.write_text(f"{res[0].product_id} {res[1].product_id}\n"
                 f"{bercy / 'imgs_1'} {bercy / 'imgs_2'}\n")
    args = ["change", "--pairs", str(f), "--method", "cva", *where, "--db", db_url]
    counted = _patches_counted("change")

    log = tmp_path / "progress.jsonl"
    with pytest.raises(SystemExit, match="^1$") as exc:
        main([*args, "--progress-log", str(log)])
    out, err = capsys.readouterr()
    assert exc.value.code == 1
    assert out.count(" cva  changed ") == 1  # the good pair is done and reported
    # each pair's steps, said by its task (on a Ray worker too): in the terminal and in
    # the log that the app's job list reads (`AppJob.said`)
    said = [r["said"] for r in map(json.loads, log.read_text().splitlines()) if "said" in r]
    assert f"reading {res[0].product_id} and {res[1].product_id}" in said
    assert f"reading {bercy / 'imgs_1'} and {bercy / 'imgs_2'}" in said
    assert [x for x in said if re.fullmatch(r"cva change map on \d+ x \d+ px", x)]
    assert all(x in err for x in said)
    assert "1 of 2 pair(s) failed" in err and str(bercy / "imgs_1") in err
    assert "re-run the same command" in err
    with open_store(db_url) as store:
        pairs = store.pairs(kind="change")
        assert pairs.num_rows == 1  # only the ingested pair has products to record
        assert pairs["first_id"][0].as_py() == res[0].product_id
        pair = store.pair(pairs["pair_id"][0].as_py())
        fs = store.require_feature_set(pair["params"]["feature_set_id"])
        assert store.count_features(fs) == n_patches
        # the index tails came back from the worker with the map's scores, same patches
        tails = store.require_feature_set(pair["params"]["tails_feature_set_id"])
        assert tails.name == "diff_tails" and store.count_features(tails) == n_patches
        q = store.query(f"SELECT MIN(q90_ndbi - q10_ndbi), MAX(absmean_ndvi) "
                        f"FROM {tails.table_name}")[0]
        assert q[0] >= 0 and q[1] > 0
        jobs = store.tasks().to_pylist()
        assert [(j["kind"], j["status"], j["n_items"]) for j in jobs] == [
            ("change", "done", n_patches)]
    assert _patches_counted("change") - counted == n_patches  # the Prometheus counter

    shutil.copy(oscd / "images" / "bercy" / "imgs_1" / band.name, band)  # the fix
    main(args)
    out, err = capsys.readouterr()
    assert out.count(" cva  changed ") == 2
    assert out.count("(done by an earlier run)") == 1
    assert "2 of 2 pair(s) done (1 by an earlier run), 0 failed" in err
    with open_store(db_url) as store:
        again = store.pair(pair["pair_id"])
        assert again["created"] == pair["created"]  # not computed a second time
        assert [j["status"] for j in store.tasks().to_pylist()] == ["done"]

    # --no-cloud-mask reaches the workers: not resumed from the masked run, own sets
    f.write_text(f"{res[0].product_id} {res[1].product_id}\n")
    main([*args, "--no-cloud-mask"])
    out, err = capsys.readouterr()
    assert out.count(" cva  changed ") == 1 and "done by an earlier run" not in out
    with open_store(db_url) as store:
        bare = store.pair(pair["pair_id"])["params"]
        assert bare["mask_clouds"] is False
        assert bare["feature_set_id"] != pair["params"]["feature_set_id"]
        assert bare["tails_feature_set_id"] != pair["params"]["tails_feature_set_id"]
        assert store.require_feature_set(bare["feature_set_id"]).params["mask_clouds"] is False


def test_only_the_methods_that_train_a_network_ask_the_cluster_for_a_gpu() -> None:
    from compute.change import wants_gpu
    from eominer.change.run import PairInput
    from eominer.store import Product

    def side(sensor: str | None) -> PairInput:
        if sensor is None:
            return PairInput("some/folder")  # a path: its sensor is known once read
        return PairInput("p1", Product("p1", sensor, "EPSG:32631", "POLYGON EMPTY", "s", "a",
                                       10, 10, ("B02",), (10.0, 0.0, 0.0, 0.0, -10.0, 0.0)))

    asks = {(m, s): wants_gpu(m, side(s))
            for m in (None, "selftrain_regression", "cva", "encoder", "selftrain_encoder")
            for s in (None, "S2")}
    # the S2 default (selftrain_regression) trains no network; the encoder methods do
    assert {k for k, v in asks.items() if v} == {
        ("encoder", None), ("encoder", "S2"),
        ("selftrain_encoder", None), ("selftrain_encoder", "S2")}
    assert not wants_gpu("rom", side("S1")) and not wants_gpu(None, side("S1"))


def test_a_pair_whose_product_is_removed_while_it_is_computed_leaves_no_layer(
        oscd, workspace, db_url, monkeypatch) -> None:
    """`eominer products remove` lands while the pair is computed: nothing of it is
    recorded, its layer files (written by the worker) go, the other pair is whole."""
    from compute.change import run_pairs
    from eominer.ingest import ingest_paths
    from eominer.removal import remove_products
    from eominer.store import open_store
    from eominer.workspace import layers_dir

    with open_store(db_url) as store:
        (a, b), (c, d) = ([r.product_id for r in ingest_paths(
            store, [oscd / "images" / city / "imgs_1", oscd / "images" / city / "imgs_2"],
            levels=(64,))] for city in ("paris", "bercy"))
        check = store.existing_products

        def removed_just_before_the_check(ids):  # the worst moment: its layers are written
            if d in ids and store.product(d) is not None:
                remove_products(store, [d])
            return check(ids)

        monkeypatch.setattr(store, "existing_products", removed_just_before_the_check)
        report = run_pairs([(a, b), (c, d)], "cva", store, num_cpus=2)
        assert report.notes == [f"product {d} was removed while the job ran: 1 change "
                                "task(s) of it were not written"]
        kept, dropped = report.runs
        assert dropped is None and kept is not None
        assert [(p["first_id"], p["second_id"]) for p in store.pairs(kind="change").to_pylist()
                ] == [(a, b)]
        assert sorted(layers_dir().glob("*.tif")) == sorted(
            map(Path, (kept.probability_path, kept.binary_path)))
        assert {j["status"] for j in store.tasks().to_pylist()} == {"done", "failed"}
