"""`extract` refuses bad input up front, with a clear message and nothing written."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from compute.extract import block_tasks, compute_block, run_extract
from compute.runtime import ray_session
from eominer.cli import main
from eominer.errors import (
    ConfigError,
    FeatureError,
    JobError,
    MissingExtraError,
    ModelNotTrainedError,
    ProductReadError,
)
from eominer.store import open_store


@pytest.fixture(scope="module")
def base_db(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One S2 (Bordeaux 2016) and one S1 product, ingested once for this module."""
    from eominer.ingest import ingest_paths

    home = tmp_path_factory.mktemp("extract_inputs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        with open_store(f"duckdb:///{home / 'base.duckdb'}") as store:
            ingest_paths(store, [
                shared_data / "oscd/images/bordeaux/imgs_1",
                next((shared_data / "bigearthnet/s1-tiny").iterdir()),
            ])
    return home


@pytest.fixture
def store(base_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the database and its ARD files (tests may break them)."""
    home = tmp_path / "ws"
    shutil.copytree(base_db, home)
    monkeypatch.setenv("EOMINER_HOME", str(home))
    st = open_store(f"duckdb:///{home / 'base.duckdb'}")
    st.execute("UPDATE products SET ard_path = REPLACE(ard_path, ?, ?)",
               (str(base_db), str(home)))
    yield st
    st.close()


def nothing_written(store) -> bool:
    return not store.feature_sets() and store.query("SELECT COUNT(*) FROM jobs")[0][0] == 0


def s2_product(store) -> dict:
    return next(p for p in store.products().to_pylist() if p["sensor"] == "S2")


def test_unknown_feature_name(store):
    with pytest.raises(FeatureError, match=r"unknown feature set 'hog'.*spectral, gabor"):
        run_extract(store, "spectral,hog")
    assert nothing_written(store)


def test_unknown_product(store):
    with pytest.raises(ConfigError, match="S2X_MISSING not in the database"):
        run_extract(store, "spectral", ["S2X_MISSING"])
    assert nothing_written(store)


def test_missing_ard_file(store):
    prod = s2_product(store)
    Path(prod["ard_path"]).unlink()
    with pytest.raises(ProductReadError, match=f"{prod['product_id']} is missing.*re-ingest"):
        run_extract(store, "spectral")
    assert nothing_written(store)


def test_corrupt_ard_file(store):
    prod = s2_product(store)
    Path(prod["ard_path"]).write_bytes(b"II*\x00 this is not a GeoTIFF any more")
    with pytest.raises(ProductReadError, match=f"{prod['product_id']} is corrupt"):
        run_extract(store, "spectral")
    assert nothing_written(store)


def test_encoder_requested_before_training(store):
    with pytest.raises(ModelNotTrainedError, match="eominer encoder train"):
        run_extract(store, "spectral,encoder")
    assert nothing_written(store)


def test_ray_not_installed(store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"eominer\[ray\]"):
        run_extract(store, "spectral")
    assert nothing_written(store)


def test_a_cluster_that_cannot_be_reached_leaves_the_database_as_it_was(store):
    """A real Ray Client connection to a loopback port where no cluster listens (Ray
    gives up after ~30 s): the error names the address, and nothing was written."""
    with pytest.raises(ConfigError, match="cannot reach a Ray cluster at ray://127.0.0.1:9"):
        run_extract(store, "spectral,gabor", address="ray://127.0.0.1:9")
    assert nothing_written(store)
    # the failed connect must not leave Ray Client mode on: a local run still works
    with ray_session(num_cpus=1) as ray:
        assert ray.get(ray.put(7)) == 7


def gcs_servers() -> list:
    import psutil  # shipped with Ray

    return [p for p in psutil.Process().children(recursive=True) if p.name() == "gcs_server"]


def test_a_local_ray_start_that_times_out_is_retried_and_its_leftovers_killed(
        monkeypatch, caplog):
    """A real time-out: with Ray's wait for its GCS port file set to 0 s, the first try
    fails with Ray's own error and leaves its gcs_server running (as a raylet that
    missed its 30 s does on a busy machine); the second try waits as usual and runs."""
    import ray

    real_init, tries, leftovers = ray.init, [], []
    monkeypatch.setenv("RAY_gcs_server_port_wait_time_s", "0")

    def init_then_wait_as_usual(**kwargs):
        tries.append(kwargs)
        try:
            return real_init(**kwargs)
        finally:
            if len(tries) == 1:
                leftovers.extend(gcs_servers())
                monkeypatch.delenv("RAY_gcs_server_port_wait_time_s")

    monkeypatch.setattr(ray, "init", init_then_wait_as_usual)
    with ray_session(num_cpus=1) as r:
        assert r.get(r.put(7)) == 7
    assert len(tries) == 2 and tries[0] == tries[1]
    assert leftovers and not any(p.is_running() for p in leftovers)  # killed, reaped
    assert "local Ray start 1 of 3 timed out (Timed out waiting for file" in caplog.text


def test_a_local_ray_that_never_starts_says_what_to_do_and_writes_nothing(
        store, monkeypatch):
    import ray

    real_init, tries = ray.init, []

    def counted_init(**kwargs):
        tries.append(1)
        return real_init(**kwargs)

    monkeypatch.setattr(ray, "init", counted_init)
    monkeypatch.setenv("RAY_gcs_server_port_wait_time_s", "0")  # every try times out
    with pytest.raises(JobError, match=r"did not start in 3 tries .*stop other heavy work"):
        run_extract(store, "spectral")
    assert len(tries) == 3 and nothing_written(store) and not gcs_servers()

    monkeypatch.delenv("RAY_gcs_server_port_wait_time_s")
    not_a_time_out = pytest.raises(ValueError, match="must be nonnegative")  # no retry
    with not_a_time_out, ray_session(num_cpus=1, num_gpus=-1):
        pass
    assert len(tries) == 4


def test_cli_exits_non_zero_with_one_clear_line(store, capsys):
    url = store.url
    store.close()
    with pytest.raises(SystemExit, match="^1$") as exc:
        main(["extract", "--features", "texture", "--db", url])
    assert exc.value.code == 1
    assert "unknown feature set 'texture'" in capsys.readouterr().err


def test_blocks_cover_every_patch_once_and_compute_without_ray(store):
    prod = s2_product(store)
    tasks = block_tasks(store, prod, "fs", "spectral", {}, block_rows=200)
    assert [t.y1 - t.y0 for t in tasks][:2] == [128, 128]  # rounded to the 128 px level
    ids = [i for t in tasks for i in t.patch_ids]
    assert sorted(ids) == sorted(store.patches(prod["product_id"])["patch_id"].to_pylist())
    pids, values = compute_block(tasks[1])
    assert len(pids) == len(values) and values.shape[1] == 13 * 5 + 6
