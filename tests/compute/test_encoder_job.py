"""`eominer encoder train` as a runner job: one Ray task reads the sampled patches,
trains, and hands the model back to the driver, which records it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compute.encoder import train
from compute.runtime import worker_name
from eominer.errors import FeatureError
from eominer.store import open_store


@pytest.fixture(scope="module")
def small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    from eominer.ingest import ingest_paths

    home = tmp_path_factory.mktemp("enc_job")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        store = open_store(f"duckdb:///{home / 'db.duckdb'}")
        ingest_paths(store, [shared_data / "oscd/images/bordeaux/imgs_1"], levels=(32,))
        yield store, home
        store.close()


def test_the_task_trains_what_in_process_training_trains(small, capsys):
    """The task function without Ray: the model bytes it returns, recorded by the
    driver's `save_model`, embed; its training is the in-process one, value for value.
    It prints a line per epoch (what the terminal and the app's job list show)."""
    from compute.encoder import train_task
    from eominer.features import build
    from eominer.features.encoder import set_single_thread
    from eominer.features.encoder_train import sample_sources, save_model
    from eominer.features.ssl import train_ssl

    store, home = small
    set_single_thread()
    sources = sample_sources(store, None, 200, seed=0)
    blob, params, metrics, used = train_task("ssl", sources, 2, 8, 64, 0)
    assert isinstance(blob, bytes) and metrics["patches"] == 200 and metrics["gpu"] is False
    assert [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch")] == [
        f"epoch {i + 1}/2: VICReg loss {v:.4f}" for i, v in enumerate(metrics["loss_history"])]
    row = save_model(store, "ssl", blob, params, metrics, used)
    assert row["model_id"] == "ssl-v1" and Path(row["path"]).read_bytes() == blob
    local = train_ssl(store, epochs=2, dim=8, max_patches=200, batch_size=64)
    np.testing.assert_allclose(local["metrics"]["loss_history"], metrics["loss_history"],
                               rtol=1e-4)
    prod = store.product_list()[0]
    d1, d2 = build("ssl", list(prod.bands), model=row), build("ssl", list(prod.bands),
                                                             model=local)
    from eominer.features.blocks import band_indexes, read_block

    stack = read_block(prod.ard_path, "S2", band_indexes(list(prod.bands), d1.bands, "p"),
                       0, 64, 0, prod.width, prod.height)
    w = np.array([[0, 0, 32, 32], [32, 32, 32, 32]])
    np.testing.assert_allclose(d1.compute(stack, w), d2.compute(stack, w), rtol=1e-3,
                               atol=1e-4)


@pytest.mark.ray
def test_ssl_trains_as_a_runner_task(small):
    store, home = small
    row = train(store, "ssl", epochs=1, dim=8, max_patches=200, batch_size=64, num_cpus=1)
    assert row["kind"] == "ssl" and Path(row["path"]).exists()
    assert row["metrics"]["patches"] == 200
    assert row["trained_on"] == [store.product_list()[0].product_id]
    tasks = store.tasks()
    assert "ssl-train" in tasks["kind"].to_pylist()
    assert set(tasks["status"].to_pylist()) == {"done"}
    # no cluster named: the one task runs here, with this process's threads, not on a
    # one-thread local Ray worker that costs its start-up first
    assert set(tasks["worker"].to_pylist()) == {worker_name()}


@pytest.mark.ray
def test_a_training_takes_over_the_task_a_stopped_training_left(small):
    """A stopped training leaves its one task stopped (nothing else to resume); the next
    training of its kind takes that row over, so the stopped job is no longer listed
    with tasks left. A training at work in a live process is left alone; the task of
    one that crashed (marked running by a dead process) is taken over too."""
    import os
    import socket
    import subprocess
    import sys

    from compute.runner import task_to_take_over

    store, _ = small
    host = socket.gethostname()

    def leftover(job_id: str, status: str, pid: int | None = None) -> str:
        task_id = f"{job_id}/train"
        store.schedule_tasks(job_id, "ssl-train", [{"task_id": task_id, "product_id": None,
                                                    "feature_set_id": None, "block": 0,
                                                    "n_items": 200}])
        if status == "running":  # a start mark, as a driver's
            store.start_tasks([(task_id, 1)], worker=f"{host}:{pid}")
        elif status == "stopped":  # as `run_job` leaves it
            store.execute("UPDATE jobs SET status = 'stopped' WHERE task_id = ?", (task_id,))
        return task_id

    # as the runner leaves them: a stop (no worker); a live training (this process's
    # mark); the latest: another machine's training at work
    stopped = leftover("ssl-train-20261201T100000-aaaaaa", "stopped")
    live = leftover("ssl-train-20261201T110000-bbbbbb", "running", os.getpid())
    store.execute("UPDATE jobs SET worker = 'elsewhere:1' WHERE task_id = ?",
                  (leftover("ssl-train-20261201T120000-cccccc", "running", 1),))
    assert task_to_take_over(store, "ssl-train") == stopped
    assert task_to_take_over(store, "encoder-train") is None  # another kind: its own

    row = train(store, "ssl", epochs=1, dim=8, max_patches=200, batch_size=64, num_cpus=1)
    assert row["kind"] == "ssl"
    status = {r["task_id"]: (r["job_id"], r["status"]) for r in store.tasks().to_pylist()}
    assert status[stopped][1] == "done"
    assert not status[stopped][0].startswith("ssl-train-20261201T1000")  # moved to the run
    assert status[live] == ("ssl-train-20261201T110000-bbbbbb", "running")
    assert store.tasks("ssl-train-20261201T100000-aaaaaa").num_rows == 0
    assert task_to_take_over(store, "ssl-train") is None

    # a training that crashed: its mark names a process that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    crashed = leftover("ssl-train-20261201T130000-dddddd", "running", int(dead))
    assert task_to_take_over(store, "ssl-train") == crashed
    with store.transaction():  # the module's other tests see only their own tasks
        store.execute("DELETE FROM jobs WHERE job_id LIKE 'ssl-train-20261201T1%'")


def test_bad_method_and_unknown_products_fail_before_ray(small):
    store, _ = small
    with pytest.raises(FeatureError, match="one of autoencoder, ssl"):
        train(store, "simclr")
    with pytest.raises(FeatureError, match="not in the database"):
        train(store, "ssl", ["S2X_NOPE"])
