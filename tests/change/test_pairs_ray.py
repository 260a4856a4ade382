"""`eominer change --pairs FILE`: pairs as Ray tasks (local Ray), the driver writes the DB."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from eominer.cli import cli

pytestmark = pytest.mark.ray


def test_pairs_file_runs_on_ray_and_records_each_pair(oscd, workspace, db_url, tmp_path) -> None:
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    base = oscd / "images" / "paris"
    with open_store(db_url) as store:
        res = ingest_paths(store, [base / "imgs_1", base / "imgs_2"], levels=(64,))
    bercy = oscd / "images" / "bercy"
    f = tmp_path / "pairs.txt"
    f.write_text(f"{res[0].product_id} {res[1].product_id}\n"
                 f"{bercy / 'imgs_1'} {bercy / 'imgs_2'}\n")
    r = CliRunner().invoke(cli, ["change", "--pairs", str(f), "--method", "cva",
                                 "--num-cpus", "2", "--db", db_url])
    assert r.exit_code == 0, r.output
    assert r.output.count(" cva  changed ") == 2
    with open_store(db_url) as store:
        pairs = store.pairs(kind="change")
        assert pairs.num_rows == 1  # only the ingested pair has products to record
        assert pairs["first_id"][0].as_py() == res[0].product_id
        fs_id = store.pair(pairs["pair_id"][0].as_py())["params"]["feature_set_id"]
        n = store.query("SELECT COUNT(*) FROM patches WHERE product_id = ?",
                        (res[0].product_id,))[0][0]
        assert store.count_features(store.require_feature_set(fs_id)) == n
