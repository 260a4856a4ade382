"""compute/runtime.py: a GPU for model tasks only where one is or can be started; each
Ray worker runs one BLAS / OpenMP / TensorFlow thread and the driver's environment is
left as the user had it; a local Ray start that times out is retried, and one that never
starts says what to do (and `extract` writes nothing)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from compute.extract import run_extract
from compute.runtime import WORKER_ENV, gpus_for_models, gpus_in_cluster, ray_session
from eominer.errors import ConfigError, JobError
from tests.compute.dbcheck import nothing_written


def cluster(**resources: float) -> SimpleNamespace:
    return SimpleNamespace(cluster_resources=lambda: {"CPU": 4.0, **resources})


def _pools() -> dict[str, int]:
    """Thread pools loaded in this process: numpy's BLAS, scikit-learn's OpenMP."""
    import numpy  # noqa: F401
    import sklearn.cluster  # noqa: F401  (loads the OpenMP runtime)
    from threadpoolctl import threadpool_info

    return {p["user_api"]: p["num_threads"] for p in threadpool_info()}


def _threads_in_worker(how: str) -> dict:
    if how == "actor":  # libraries loaded first (the module imports numpy), then the limit
        from compute.runner import Worker

        _pools()
        Worker()
    elif how == "task":  # the limit first, libraries loaded after it (change, fusion)
        from compute.runtime import limit_worker_threads

        limit_worker_threads()
    return {"pools": _pools(), "env": {k: os.environ.get(k) for k in WORKER_ENV}}


def gcs_servers() -> list:
    import psutil  # shipped with Ray

    return [p for p in psutil.Process().children(recursive=True) if p.name() == "gcs_server"]


def grpc_polling_threads() -> list[threading.Thread]:
    """Threads in grpc's `_poll_connectivity` (the watcher of a subscribed channel)."""
    frames = sys._current_frames()
    out = []
    for t in threading.enumerate():
        f = frames.get(t.ident)
        while f is not None and f.f_code.co_name != "_poll_connectivity":
            f = f.f_back
        if f is not None:
            out.append(t)
    return out


@pytest.mark.ray
def test_a_port_that_is_not_ray_fails_cleanly_and_leaks_no_grpc_thread(monkeypatch):
    """A real Ray Client connect to a loopback port that accepts TCP but speaks no Ray: a
    clear error; the failed connect's gRPC channel is closed (its polling thread would
    call into gRPC's C core until the interpreter exits, racing its teardown); Ray Client
    mode is off again, so a local Ray works. Ray's three connection attempts wait 1 s each
    here instead of 5-15 s (its timeouts are read when its client module loads, so they
    are set on the module); the warning it gives when it gives up is expected."""
    import ray.util.client.worker as client_worker

    monkeypatch.setattr(client_worker, "INITIAL_TIMEOUT_SEC", 1)
    monkeypatch.setattr(client_worker, "MAX_TIMEOUT_SEC", 1)
    with socket.socket() as silent, \
            pytest.warns(UserWarning, match="Ray Client connection timed out"):
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"ray://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"cannot reach a Ray cluster at {address}"), \
                ray_session(address):
            pass
    deadline = time.monotonic() + 5
    while grpc_polling_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert grpc_polling_threads() == []
    with ray_session(num_cpus=1) as ray:
        assert ray.get(ray.put(7)) == 7


def test_bad_cluster_addresses_are_refused_before_ray_is_asked():
    with pytest.raises(ConfigError, match=r"Ray address 'head': expected host:port"), \
            ray_session("head"):
        pass
    with pytest.raises(ConfigError, match="--num-cpus applies to a local Ray only"), \
            ray_session("127.0.0.1:6379", num_cpus=2):
        pass


def test_gpu_requested_only_where_one_is_or_can_be_started(monkeypatch):
    monkeypatch.delenv("EOMINER_GPU_NODES", raising=False)
    assert gpus_for_models(cluster()) == 0  # a laptop: never wait for a GPU
    assert gpus_for_models(cluster(GPU=2.0)) == 1
    assert gpus_in_cluster(cluster(GPU=2.0)) == 2
    monkeypatch.setenv("EOMINER_GPU_NODES", "1")
    assert gpus_for_models(cluster()) == 1  # all GPU nodes down, the autoscaler can boot one
    monkeypatch.setenv("EOMINER_GPU_NODES", "0")
    assert gpus_for_models(cluster()) == 0
    monkeypatch.setenv("EOMINER_GPU_NODES", "lots")
    with pytest.raises(ConfigError, match="EOMINER_GPU_NODES must be 1 or 0, got 'lots'"):
        gpus_for_models(cluster())


@pytest.mark.ray
def test_each_worker_limits_its_own_threads_and_the_driver_is_untouched(monkeypatch):
    for k in WORKER_ENV:
        monkeypatch.delenv(k, raising=False)
    with ray_session(num_cpus=2) as ray:
        # two-CPU tasks: Ray itself would give them two BLAS/OpenMP threads and leave
        # TensorFlow alone, so what is seen below is the limit of our own
        two_cpus = {"num_cpus": 2, "max_calls": 1}  # max_calls: a fresh worker each
        default = ray.get(ray.remote(**two_cpus)(_threads_in_worker).remote("none"))
        task = ray.remote(**two_cpus)(_threads_in_worker)
        seen = ray.get([task.remote("actor"), task.remote("task")])
    assert set(default["pools"]) >= {"blas", "openmp"}
    assert set(default["pools"].values()) == {2}
    assert default["env"]["TF_NUM_INTRAOP_THREADS"] is None
    for s in seen:
        assert s["pools"] == {api: 1 for api in default["pools"]}
        assert s["env"] == WORKER_ENV
    assert all(k not in os.environ for k in WORKER_ENV)  # the driver: as the user had it


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
        run_extract(store, "spectral", num_workers=2)
    assert len(tries) == 3 and nothing_written(store) and not gcs_servers()

    monkeypatch.delenv("RAY_gcs_server_port_wait_time_s")
    not_a_time_out = pytest.raises(ValueError, match="must be nonnegative")  # no retry
    with not_a_time_out, ray_session(num_cpus=1, num_gpus=-1):
        pass
    assert len(tries) == 4


def test_a_job_moving_to_a_ray_that_never_starts_keeps_what_ran_here(store, monkeypatch):
    """The default job ran its first task here, then judged Ray worth it (forced) and
    Ray did not start: the error says what to do, the task done here stays committed,
    and the same call (Ray now up) does only the rest."""
    import ray

    import compute.runner

    monkeypatch.setattr(compute.runner, "ray_pays_off", lambda n: lambda rest: True)
    tries: list[int] = []
    real_init = ray.init
    monkeypatch.setattr(ray, "init", lambda **kw: tries.append(1) or real_init(**kw))
    monkeypatch.setenv("RAY_gcs_server_port_wait_time_s", "0")  # the real start times out
    monkeypatch.setattr(compute.runtime, "LOCAL_START_ATTEMPTS", 1)
    earlier = {p.pid for p in gcs_servers()}  # an earlier test's Ray may still be going
    with pytest.raises(JobError, match=r"did not start in 1 tries .*--workers 0"):
        run_extract(store, "spectral", block_rows=64)
    status = store.tasks()["status"].to_pylist()
    assert status.count("done") == 1 and set(status) == {"done", "stopped"}
    assert tries == [1] and not {p.pid for p in gcs_servers()} - earlier
    monkeypatch.undo()
    again = run_extract(store, "spectral", block_rows=64, num_workers=0)
    assert again.tasks_skipped == 1 and again.tasks_done == len(status) - 1
    assert set(store.tasks()["status"].to_pylist()) == {"done"}
