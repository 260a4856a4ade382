"""Prometheus metrics of the app and the batch jobs.

What a scaling decision needs to see, next to Ray's own metrics (which the Ray
dashboard exports on each node): patches processed, how long tasks take, how many
tasks wait, and how many nodes of each kind are up. The Grafana dashboard in
`compute/grafana-dashboard.json` draws these series.

    from eominer.metrics import default_metrics, start_exporter
    m = default_metrics()
    with m.task_timer("extract"):
        ...                                    # one Ray task's result handled
    m.record_patches("extract", 4096)
    exporter = start_exporter(port=9464)       # 127.0.0.1 unless told otherwise

Metrics are counted in the driver, where the task results arrive, so one exporter per
job sees the whole cluster's progress: `eominer extract` serves them while it runs when
`EOMINER_METRICS_PORT` is set (`exporter_from_env`). The app serves the database's view
of the same quantities at `/metrics` on its own port (`JobsCollector`, `metrics_handler`),
under other names (`eominer_db_*`) so a dashboard never adds the two up. The job kind
is the label `batch_job`: Prometheus sets `job` itself (the scrape job's name).
Nothing is created at import: the registry and its metrics appear on the first
`Metrics()` (or `default_metrics()`) call.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eominer.errors import ConfigError, require

# Task latencies span a small patch block on a laptop to a whole product on a busy node.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The eominer series, in a registry of their own (not prometheus_client's global one)."""

    def __init__(self, registry: Any = None) -> None:
        pc = require("prometheus_client", "metrics", "Prometheus metrics")
        self.registry = registry if registry is not None else pc.CollectorRegistry()
        self.patches = pc.Counter(
            "eominer_patches_processed", "Patches whose features were computed and stored",
            ["batch_job"], registry=self.registry)
        self.tasks = pc.Histogram(
            "eominer_task_seconds", "Wall time of one batch task (product x tile block)",
            ["batch_job"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.task_failures = pc.Counter(
            "eominer_task_failures", "Batch tasks that raised (before any retry)",
            ["batch_job"], registry=self.registry)
        self.queue_depth = pc.Gauge(
            "eominer_queue_depth", "Tasks submitted and not finished yet",
            ["batch_job"], registry=self.registry)
        self.nodes = pc.Gauge(
            "eominer_cluster_nodes", "Alive Ray nodes, by kind (cpu, gpu)",
            ["kind"], registry=self.registry)

    def record_patches(self, job: str, count: int) -> None:
        if count < 0:
            raise ConfigError(f"patch count for job {job!r} must be >= 0, got {count}")
        self.patches.labels(batch_job=job).inc(count)

    def record_task(self, job: str, seconds: float, *, failed: bool = False) -> None:
        if seconds < 0:
            raise ConfigError(f"task time for job {job!r} must be >= 0 s, got {seconds}")
        self.tasks.labels(batch_job=job).observe(seconds)
        if failed:
            self.task_failures.labels(batch_job=job).inc()

    @contextmanager
    def task_timer(self, job: str) -> Iterator[None]:
        """Time a block as one task; a raising block counts as a failed task."""
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.record_task(job, time.perf_counter() - start, failed=True)
            raise
        self.record_task(job, time.perf_counter() - start)

    def set_queue_depth(self, job: str, pending: int) -> None:
        if pending < 0:
            raise ConfigError(f"queue depth for job {job!r} must be >= 0, got {pending}")
        self.queue_depth.labels(batch_job=job).set(pending)

    def set_nodes(self, nodes: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Count alive nodes from `ray.nodes()`-shaped dicts; a node with a GPU is 'gpu'."""
        counts = {"cpu": 0, "gpu": 0}
        for node in nodes:
            if node.get("Alive"):
                gpus = (node.get("Resources") or {}).get("GPU", 0)
                counts["gpu" if gpus > 0 else "cpu"] += 1
        for kind, n in counts.items():
            self.nodes.labels(kind=kind).set(n)
        return counts

    def observe_ray_nodes(self) -> dict[str, int]:
        """`set_nodes` from the connected Ray cluster (the caller has called ray.init)."""
        ray = require("ray", "ray", "counting cluster nodes")
        return self.set_nodes(ray.nodes())

    def exposition(self) -> bytes:
        """The text a Prometheus scrape gets."""
        pc = require("prometheus_client", "metrics", "Prometheus metrics")
        return pc.generate_latest(self.registry)


@functools.cache
def default_metrics() -> Metrics:
    """The process's Metrics, created on first use; jobs and the app share it."""
    return Metrics()


class _NoMetrics:
    """Stands in for Metrics where prometheus-client is not installed: counts nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def job_metrics() -> Metrics | _NoMetrics:
    """`default_metrics()`, or a no-op when the `metrics` extra is missing: a batch job
    must not fail for want of its dashboard (asking for an exporter still does)."""
    import importlib.util

    if importlib.util.find_spec("prometheus_client") is None:
        return _NoMetrics()
    return default_metrics()


@dataclass
class Exporter:
    """A running /metrics HTTP endpoint; `close()` stops it."""

    host: str
    port: int
    _server: Any
    _thread: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_exporter(port: int = 9464, addr: str = "127.0.0.1",
                   metrics: Metrics | None = None) -> Exporter:
    """Serve `metrics` (default: `default_metrics()`) for Prometheus to scrape.

    Binds to 127.0.0.1 unless `addr` says otherwise: on a cluster, pass the node's
    private address (or 0.0.0.0 behind a security group) so Prometheus can reach it.
    `port=0` picks a free port (see `Exporter.port`).
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be in 0..65535, got {port}")
    pc = require("prometheus_client", "metrics", "Prometheus metrics")
    metrics = metrics or default_metrics()
    server, thread = pc.start_http_server(port, addr=addr, registry=metrics.registry)
    return Exporter(host=addr, port=server.server_address[1], _server=server, _thread=thread)


@contextmanager
def exporter_from_env(metrics: Metrics | None = None) -> Iterator[Exporter | None]:
    """Serve `metrics` while the block runs if `EOMINER_METRICS_PORT` is set (else no-op).

    `EOMINER_METRICS_ADDR` picks the address (default 127.0.0.1). Batch jobs use this,
    so `eominer extract` on a cluster's head exposes its progress to Prometheus.
    """
    text = os.environ.get("EOMINER_METRICS_PORT", "").strip()
    if not text:
        yield None
        return
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"EOMINER_METRICS_PORT must be a port number, got {text!r}") from None
    exporter = start_exporter(port, os.environ.get("EOMINER_METRICS_ADDR", "127.0.0.1"),
                              metrics)
    try:
        yield exporter
    finally:
        exporter.close()


# ---- the app's view: the jobs table, read at each scrape ------------------------------
RECENT_S = 300.0  # a worker host that finished a task this recently counts as a node


class JobsCollector:
    """Batch-job series computed from the database's `jobs` table at scrape time.

    `tasks` returns the table (`Store.tasks()`: task_id, kind, n_items, status,
    worker "host:pid", started, finished). What the app exposes, per job kind
    (label `batch_job`): `eominer_db_up` (0: the database could not be read),
    `eominer_db_tasks{status}`, `eominer_db_patches_done` (patches processed),
    `eominer_db_queue_depth` (pending + running), `eominer_db_task_seconds_mean`
    (started -> finished of done tasks) and `eominer_db_nodes` (hosts that finished a
    task in the last `recent_s` seconds).
    """

    def __init__(self, tasks: Callable[[], Any], recent_s: float = RECENT_S,
                 now: Callable[[], Any] | None = None) -> None:
        self._tasks = tasks
        self.recent_s = recent_s
        self._now = now

    def describe(self) -> list:
        return []  # collected lazily: registering must not read the database

    def collect(self) -> Iterator[Any]:
        import datetime as dt

        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("eominer_db_up", "1 if the app could read the jobs table")
        try:
            rows = self._tasks().to_pylist()
        except Exception:  # a database another process holds, a dropped connection
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self._now() if self._now else dt.datetime.now(dt.UTC).replace(tzinfo=None)
        by_status = GaugeMetricFamily("eominer_db_tasks", "Batch tasks in the database",
                                      labels=["batch_job", "status"])
        done = GaugeMetricFamily("eominer_db_patches_done",
                                 "Patches of the tasks marked done", labels=["batch_job"])
        queue = GaugeMetricFamily("eominer_db_queue_depth",
                                  "Tasks pending or running", labels=["batch_job"])
        latency = GaugeMetricFamily("eominer_db_task_seconds_mean",
                                    "Mean started-to-finished time of done tasks",
                                    labels=["batch_job"])
        nodes = GaugeMetricFamily("eominer_db_nodes",
                                  "Hosts that finished a task in the last minutes",
                                  labels=["batch_job"])
        stats: dict[str, dict[str, Any]] = {}
        for r in rows:
            s = stats.setdefault(r["kind"], {"status": {}, "done": 0, "queue": 0, "secs": [],
                                             "hosts": set()})
            s["status"][r["status"]] = s["status"].get(r["status"], 0) + 1
            if r["status"] in ("pending", "running"):
                s["queue"] += 1
            if r["status"] != "done":
                continue
            s["done"] += r["n_items"] or 0
            if r["started"] is not None and r["finished"] is not None:
                s["secs"].append(max(0.0, (r["finished"] - r["started"]).total_seconds()))
                if (now - r["finished"]).total_seconds() <= self.recent_s and r["worker"]:
                    s["hosts"].add(r["worker"].rsplit(":", 1)[0])
        for job, s in sorted(stats.items()):
            for status, n in sorted(s["status"].items()):
                by_status.add_metric([job, status], n)
            done.add_metric([job], s["done"])
            queue.add_metric([job], s["queue"])
            latency.add_metric([job], sum(s["secs"]) / len(s["secs"]) if s["secs"] else 0.0)
            nodes.add_metric([job], len(s["hosts"]))
        yield from (by_status, done, queue, latency, nodes)


def app_registry(tasks: Callable[[], Any]) -> Any:
    """A registry holding the app's series (`JobsCollector` over `tasks`)."""
    pc = require("prometheus_client", "metrics", "Prometheus metrics")
    registry = pc.CollectorRegistry()
    registry.register(JobsCollector(tasks))
    return registry


def metrics_handler(registry: Any) -> type:
    """A tornado handler serving `registry` (mount it at /metrics on the app's server)."""
    import tornado.web

    pc = require("prometheus_client", "metrics", "Prometheus metrics")

    class MetricsHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", pc.CONTENT_TYPE_LATEST)
            self.write(pc.generate_latest(registry))

    return MetricsHandler
