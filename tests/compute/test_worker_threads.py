"""Workers of eominer's Ray jobs run one BLAS / OpenMP / TensorFlow thread each, set by
the worker itself; the driver's environment is left as the user had it."""

from __future__ import annotations

import os

import pytest

from compute.runtime import WORKER_ENV, ray_session


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
