"""The Prometheus metrics a scaling decision reads, scraped over HTTP from 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eominer.errors import ConfigError
from eominer.metrics import Metrics, start_exporter

DASHBOARD = Path(__file__).resolve().parents[2] / "compute" / "grafana-dashboard.json"


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
    job = (("job", "extract"),)
    assert samples[("eominer_patches_processed_total", job)] == 5120
    assert samples[("eominer_task_seconds_count", job)] == 3
    assert samples[("eominer_task_seconds_bucket", (("job", "extract"), ("le", "0.5")))] == 2
    assert samples[("eominer_task_seconds_bucket", (("job", "extract"), ("le", "10.0")))] == 3
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
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for series in ("eominer_patches_processed_total", "eominer_task_seconds_bucket",
                   "eominer_queue_depth", "eominer_cluster_nodes", "ray_"):
        assert series in exprs, series
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
