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
job sees the whole cluster's progress. Nothing is created at import: the registry and
its metrics appear on the first `Metrics()` (or `default_metrics()`) call.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Mapping
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
            ["job"], registry=self.registry)
        self.tasks = pc.Histogram(
            "eominer_task_seconds", "Wall time of one batch task (product x tile block)",
            ["job"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.task_failures = pc.Counter(
            "eominer_task_failures", "Batch tasks that raised (before any retry)",
            ["job"], registry=self.registry)
        self.queue_depth = pc.Gauge(
            "eominer_queue_depth", "Tasks submitted and not finished yet",
            ["job"], registry=self.registry)
        self.nodes = pc.Gauge(
            "eominer_cluster_nodes", "Alive Ray nodes, by kind (cpu, gpu)",
            ["kind"], registry=self.registry)

    def record_patches(self, job: str, count: int) -> None:
        if count < 0:
            raise ConfigError(f"patch count for job {job!r} must be >= 0, got {count}")
        self.patches.labels(job=job).inc(count)

    def record_task(self, job: str, seconds: float, *, failed: bool = False) -> None:
        if seconds < 0:
            raise ConfigError(f"task time for job {job!r} must be >= 0 s, got {seconds}")
        self.tasks.labels(job=job).observe(seconds)
        if failed:
            self.task_failures.labels(job=job).inc()

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
        self.queue_depth.labels(job=job).set(pending)

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
