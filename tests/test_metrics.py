"""The Prometheus metrics a scaling decision reads, scraped over HTTP from 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eominer.errors import ConfigError
from eominer.metrics import Metrics, start_exporter

DASHBOARD = Path(__file__).resolve().parents[1] / "compute" / "grafana-dashboard.json"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_job_metrics_are_scraped_from_the_exporter():
    metrics = Metrics()
    metrics.record_patches("extract", 4096)
    metrics.record_patches("extract", 1024)
    metrics.record_task("extract", 0.3)
    metrics.record_task("extract", 7.0)
    with pytest.raises(RuntimeError, match="boom"), metrics.task_timer("extract"):
        raise RuntimeError("boom")
    metrics.set_queue_depth("extract", 12)
    counts = metrics.set_nodes([
        {"Alive": True, "Resources": {"CPU": 4.0}},
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {"Alive": False, "Resources": {"CPU": 4.0}},
        {"Alive": True, "Resources": {"CPU": 2.0}},
    ])
    assert counts == {"cpu": 2, "gpu": 1}

    exporter = start_exporter(port=0, metrics=metrics)
    try:
        assert exporter.url.startswith("http://127.0.0.1:")
        samples = scrape(exporter.url)
    finally:
        exporter.close()
    job = (("batch_job", "extract"),)
    assert samples[("eominer_patches_processed_total", job)] == 5120
    assert samples[("eominer_task_seconds_count", job)] == 3
    assert samples[("eominer_task_seconds_bucket", (("batch_job", "extract"), ("le", "0.5")))] == 2
    assert samples[("eominer_task_seconds_bucket", (("batch_job", "extract"), ("le", "10.0")))] == 3
    assert samples[("eominer_task_failures_total", job)] == 1
    assert samples[("eominer_queue_depth", job)] == 12
    assert samples[("eominer_cluster_nodes", (("kind", "cpu"),))] == 2
    assert samples[("eominer_cluster_nodes", (("kind", "gpu"),))] == 1


def test_bad_metric_values_are_refused():
    metrics = Metrics()
    with pytest.raises(ConfigError, match="patch count for job 'extract' must be >= 0"):
        metrics.record_patches("extract", -1)
    with pytest.raises(ConfigError, match="queue depth .* must be >= 0"):
        metrics.set_queue_depth("extract", -3)
    with pytest.raises(ConfigError, match="metrics port must be in 0..65535"):
        start_exporter(port=70000, metrics=metrics)


def test_grafana_dashboard_queries_the_exported_series():
    import re

    import pyarrow as pa

    from eominer.metrics import app_registry

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for series in ("eominer_patches_processed_total", "eominer_task_seconds_bucket",
                   "eominer_queue_depth", "eominer_cluster_nodes", "eominer_db_tasks",
                   "eominer_db_queue_depth", "ray_cluster_active_nodes", "ray_tasks"):
        assert series in exprs, series
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    # every eominer series the dashboard names is one the job or the app really exports
    metrics = Metrics()
    metrics.record_patches("extract", 1)
    metrics.record_task("extract", 1.0, failed=True)
    metrics.set_queue_depth("extract", 1)
    metrics.set_nodes([{"Alive": True, "Resources": {"CPU": 1.0}}])
    tasks = pa.table({"kind": ["extract"], "status": ["done"], "n_items": [1],
                      "worker": ["h:1"], "started": [None], "finished": [None]})
    exported: dict[str, set[str]] = {}
    for registry in (metrics.registry, app_registry(lambda: tasks)):
        for family in registry.collect():
            for sample in family.samples:
                exported.setdefault(sample.name, set()).update(sample.labels)
    used = set(re.findall(r"\beominer_[a-z_]+", exprs))
    assert used <= set(exported), used - set(exported)
    # Prometheus sets `job` (the scrape job) itself: our series filter on `batch_job`
    for name in used - {"eominer_cluster_nodes", "eominer_db_up"}:
        assert "batch_job" in exported[name], name
    assert not re.search(r"\bjob=~", exprs)


def test_job_exporter_runs_only_when_asked(monkeypatch):
    from eominer.metrics import exporter_from_env

    metrics = Metrics()
    metrics.record_patches("extract", 7)
    monkeypatch.delenv("EOMINER_METRICS_PORT", raising=False)
    with exporter_from_env(metrics) as exporter:
        assert exporter is None
    monkeypatch.setenv("EOMINER_METRICS_PORT", "0")
    with exporter_from_env(metrics) as exporter:
        samples = scrape(exporter.url)
    assert samples[("eominer_patches_processed_total", (("batch_job", "extract"),))] == 7
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(exporter.url, timeout=2)  # closed with the block
    monkeypatch.setenv("EOMINER_METRICS_PORT", "ninety")
    with pytest.raises(ConfigError, match="EOMINER_METRICS_PORT must be a port number"), \
            exporter_from_env(metrics):
        pass


def test_app_serves_the_jobs_table_at_metrics(tmp_path):
    """The app's /metrics handler (tornado, as `eominer serve` mounts it) over a real
    DuckDB jobs table: two extract tasks done on two hosts, one running, one pending."""
    import asyncio
    import datetime as dt

    import tornado.web

    from eominer.metrics import JobsCollector, app_registry, metrics_handler
    from eominer.store import open_store

    store = open_store(f"duckdb:///{tmp_path / 'jobs.duckdb'}")
    store.schedule_tasks("extract-1", "extract", [
        {"task_id": f"fs/p/{i}", "product_id": "p", "feature_set_id": "fs", "block": i,
         "n_items": 100 + i} for i in range(4)])
    store.schedule_tasks("change-1", "change", [
        {"task_id": "c/0", "product_id": "p", "feature_set_id": None, "block": 0,
         "n_items": 5}])
    for i, host in ((0, "node-a:11"), (1, "node-b:12")):
        store.start_task(f"fs/p/{i}", 1)
        store.finish_task(f"fs/p/{i}", host)
    store.start_task("fs/p/2", 1)
    t0 = dt.datetime(2026, 1, 1, 12, 0, 0)  # timestamps set for exact latencies
    store.execute("UPDATE jobs SET started = ?, finished = ? WHERE task_id = ?",
                  (t0, t0 + dt.timedelta(seconds=4), "fs/p/0"))
    store.execute("UPDATE jobs SET started = ?, finished = ? WHERE task_id = ?",
                  (t0, t0 + dt.timedelta(seconds=8), "fs/p/1"))

    assert app_registry(store.tasks).get_sample_value("eominer_db_up") == 1
    # "now" 60 s after node-a's last task and 64 s after node-b's: both are recent nodes
    registry = prometheus_client.CollectorRegistry()
    registry.register(JobsCollector(store.tasks, now=lambda: t0 + dt.timedelta(seconds=68)))
    handler = metrics_handler(registry)

    started = threading.Event()
    state = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = tornado.web.Application([(r"/metrics", handler)]).listen(
            0, address="127.0.0.1")
        state["port"] = next(iter(server._sockets.values())).getsockname()[1]
        state["loop"], state["server"] = loop, server
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        samples = scrape(f"http://127.0.0.1:{state['port']}/metrics")
    finally:
        state["loop"].call_soon_threadsafe(state["server"].stop)
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(5)
        store.close()
    ext, chg = (("batch_job", "extract"),), (("batch_job", "change"),)
    assert samples[("eominer_db_up", ())] == 1
    assert samples[("eominer_db_tasks", (("batch_job", "extract"), ("status", "done")))] == 2
    assert samples[("eominer_db_tasks", (("batch_job", "extract"), ("status", "running")))] == 1
    assert samples[("eominer_db_tasks", (("batch_job", "extract"), ("status", "pending")))] == 1
    assert samples[("eominer_db_patches_done", ext)] == 100 + 101
    assert samples[("eominer_db_queue_depth", ext)] == 2
    assert samples[("eominer_db_queue_depth", chg)] == 1
    assert samples[("eominer_db_task_seconds_mean", ext)] == 6.0
    assert samples[("eominer_db_nodes", ext)] == 2
    assert samples[("eominer_db_nodes", chg)] == 0


def test_app_metrics_say_when_the_database_is_unreadable():
    from eominer.metrics import app_registry

    def broken():
        raise OSError("database is locked by another process")

    registry = app_registry(broken)
    assert registry.get_sample_value("eominer_db_up") == 0
    assert "eominer_db_tasks" not in prometheus_client.generate_latest(registry).decode()
