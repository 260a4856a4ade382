"""The OpenStack node provider against the real openstacksdk, its HTTP API served by
requests-mock (Keystone catalog, Nova servers, Neutron ports and floating IPs, Glance).
Nothing leaves the machine: every URL is on cloud.example.test, answered in-process."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests_mock
from ray.autoscaler.node_launch_exception import NodeLaunchException
from ray.autoscaler.tags import (
    NODE_KIND_HEAD,
    NODE_KIND_WORKER,
    STATUS_UNINITIALIZED,
    STATUS_UP_TO_DATE,
    TAG_RAY_CLUSTER_NAME,
    TAG_RAY_NODE_KIND,
    TAG_RAY_NODE_STATUS,
    TAG_RAY_USER_NODE_TYPE,
)

from compute.openstack.node_provider import (
    FLOATING_NETWORK_KEY,
    OpenStackNodeProvider,
    ray_node_id_for,
)
from eominer.errors import CloudError, ConfigError
from tests.compute.fakecloud import FakeOpenStack

AUTH = {
    "auth_url": "http://cloud.example.test/identity/v3", "username": "eominer",
    "password": "secret", "project_name": "eominer", "user_domain_name": "Default",
    "project_domain_name": "Default",
}
CPU_NODE = {"flavor": "eo1.large", "image": "Ubuntu 22.04 LTS", "network": "private",
            "security_groups": ["default", "ray"], "key_name": "ray-key"}
GPU_NODE = {**CPU_NODE, "flavor": "vm.a6000.1", "floating_ip_network": "external"}


def worker_tags(node_type: str = "cpu_worker") -> dict[str, str]:
    return {TAG_RAY_NODE_KIND: NODE_KIND_WORKER, TAG_RAY_USER_NODE_TYPE: node_type,
            TAG_RAY_NODE_STATUS: STATUS_UNINITIALIZED}


@pytest.fixture
def cloud():
    fake = FakeOpenStack()
    with requests_mock.Mocker() as mocker:
        fake.install(mocker)
        yield fake


def make_provider(cluster: str = "eo", **extra) -> OpenStackNodeProvider:
    config = {"type": "external", "module": "compute.openstack.OpenStackNodeProvider",
              "auth": AUTH, "max_retries": 2, "retry_backoff_s": 0.0, **extra}
    provider = OpenStackNodeProvider(config, cluster)
    provider.client._sleep = lambda s: None
    return provider


def test_create_tags_servers_and_lists_only_this_cluster(cloud):
    provider = make_provider()
    other = make_provider("other")
    created = provider.create_node(CPU_NODE, worker_tags(), 2)
    other.create_node(CPU_NODE, worker_tags(), 1)
    cloud.add_server("ray-eo-worker-byhand", "eo1.large", {"owner": "someone"})

    assert len(created) == 2
    nodes = provider.non_terminated_nodes({})
    assert sorted(nodes) == sorted(created)
    assert len(other.non_terminated_nodes({})) == 1
    for node in nodes:
        server = cloud.servers[node]
        assert server.name.startswith("ray-eo-worker-")
        assert server.metadata[TAG_RAY_CLUSTER_NAME] == "eo"
        assert server.metadata[TAG_RAY_NODE_KIND] == NODE_KIND_WORKER
        assert server.flavor["name"] == "eo1.large"
        assert server.image_id == "img-ubuntu" and server.network_id == "net-private"
        tags = provider.node_tags(node)
        assert tags[TAG_RAY_USER_NODE_TYPE] == "cpu_worker"
        assert tags[TAG_RAY_NODE_STATUS] == STATUS_UNINITIALIZED
        assert provider.is_running(node) and not provider.is_terminated(node)
    # filtering by tag, as the autoscaler does to count one node type
    assert provider.non_terminated_nodes({TAG_RAY_USER_NODE_TYPE: "gpu_worker"}) == []
    assert provider.non_terminated_nodes({TAG_RAY_NODE_KIND: NODE_KIND_HEAD}) == []


def test_ips_floating_ip_and_tag_updates(cloud):
    provider = make_provider()
    (gpu,) = provider.create_node(GPU_NODE, worker_tags("gpu_worker"), 1)
    assert cloud.servers[gpu].metadata[FLOATING_NETWORK_KEY] == "external"
    provider.non_terminated_nodes({})  # ACTIVE now: the floating IP gets attached
    assert provider.internal_ip(gpu) == cloud.servers[gpu].fixed_ip
    assert provider.internal_ip(gpu).startswith("192.168.0.")
    assert provider.external_ip(gpu).startswith("203.0.113.")
    assert len(cloud.floating_ips) == 1

    provider.set_node_tags(gpu, {TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE})
    assert cloud.servers[gpu].metadata[TAG_RAY_NODE_STATUS] == STATUS_UP_TO_DATE
    assert provider.node_tags(gpu)[TAG_RAY_NODE_STATUS] == STATUS_UP_TO_DATE

    (cpu,) = provider.create_node(CPU_NODE, worker_tags(), 1)
    assert provider.external_ip(cpu) is None  # no floating network asked for

    provider.terminate_node(gpu)
    assert gpu not in cloud.servers
    assert cloud.floating_ips == {}  # released, not leaked into the project
    assert provider.is_terminated(gpu)
    assert provider.non_terminated_nodes({}) == [cpu]


def test_node_ids_as_ips_and_self_starting_nodes(cloud):
    provider = make_provider(use_node_id_as_ip=True, disable_node_updaters=True)
    (node,) = provider.create_node(CPU_NODE, worker_tags(), 1)
    assert provider.internal_ip(node) == ray_node_id_for(node)
    assert len(ray_node_id_for(node)) == 56
    provider.non_terminated_nodes({})
    assert provider.node_tags(node)[TAG_RAY_NODE_STATUS] == STATUS_UP_TO_DATE


def test_quota_exceeded_is_a_clear_launch_error(cloud, caplog):
    cloud.quota_instances = 1
    provider = make_provider()
    with caplog.at_level(logging.ERROR), pytest.raises(
            NodeLaunchException, match="created 1 of 3") as info:
        provider.create_node(CPU_NODE, worker_tags(), 3)
    assert info.value.category == "QuotaExceeded"
    assert "quota exceeded" in info.value.description.lower()
    assert "quota exceeded" in caplog.text.lower()
    assert len(provider.non_terminated_nodes({})) == 1  # the one that fit is kept
    creates = [r for r in cloud.requests if r == ("POST", "/compute/v2.1/servers")]
    assert len(creates) == 2  # refused once, never retried


def test_server_in_error_is_deleted_and_logged(cloud, caplog):
    cloud.boot_outcomes.extend(["ERROR", "ACTIVE"])
    provider = make_provider()
    bad, good = provider.create_node(CPU_NODE, worker_tags(), 2)
    with caplog.at_level(logging.ERROR):
        assert provider.non_terminated_nodes({}) == [good]
    assert bad not in cloud.servers
    assert f"({bad}) is in ERROR (No valid host was found" in caplog.text


def test_server_stuck_in_build_is_deleted_after_the_timeout(cloud, caplog):
    cloud.boot_outcomes.extend(["BUILD", "BUILD"])
    provider = make_provider(build_timeout_s=600)
    old, young = provider.create_node(CPU_NODE, worker_tags(), 2)
    cloud.servers[old].created = datetime.now(UTC) - timedelta(seconds=900)
    with caplog.at_level(logging.ERROR):
        nodes = provider.non_terminated_nodes({})
    assert nodes == [young]  # still within its build time
    assert not provider.is_running(young) and not provider.is_terminated(young)
    assert old not in cloud.servers
    # Nova's timestamps have whole seconds: 900 s ago reads as 900 or 901 s
    assert re.search(r"stuck in BUILD for 90[01]s \(limit 600s\): deleting", caplog.text)


def test_api_timeouts_are_retried_a_bounded_number_of_times(cloud, caplog):
    provider = make_provider()
    provider.create_node(CPU_NODE, worker_tags(), 1)
    cloud.fail_next_requests = 2  # max_retries=2: the third attempt gets through
    with caplog.at_level(logging.WARNING):
        assert len(provider.non_terminated_nodes({})) == 1
    assert caplog.text.count("openstack list servers failed (attempt") == 2

    cloud.fail_next_requests = 10
    with pytest.raises(CloudError, match="list servers failed after 3 attempts"):
        provider.non_terminated_nodes({})
    assert cloud.fail_next_requests == 7  # exactly three tries, then it gave up


def test_server_deleted_behind_our_back_counts_as_terminated(cloud, caplog):
    provider = make_provider()
    first, second = provider.create_node(CPU_NODE, worker_tags(), 2)
    provider.non_terminated_nodes({})
    cloud.vanish(first)
    assert provider.non_terminated_nodes({}) == [second]
    assert provider.is_terminated(first)
    assert provider.node_tags(first) == {}
    cloud.vanish(second)
    with caplog.at_level(logging.WARNING):
        provider.terminate_node(second)  # 404 on delete: already gone, no error
    assert "already gone" in caplog.text
    assert provider.is_terminated(second)


def test_unknown_image_and_bad_config_are_named(cloud):
    provider = make_provider()
    with pytest.raises(NodeLaunchException, match=r"Node Launch Exception \(\w+\): ") as info:
        provider.create_node({**CPU_NODE, "image": "Windows 95"}, worker_tags(), 1)
    assert "image 'Windows 95' not found" in info.value.description
    with pytest.raises(ConfigError, match=r"lacks \['network'\]"):
        provider.create_node({"flavor": "eo1.large", "image": "x"}, worker_tags(), 1)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['flavour'\]"):
        provider.create_node({**CPU_NODE, "flavour": "x"}, worker_tags(), 1)
    with pytest.raises(ConfigError, match="max_retries must be in 0..20"):
        make_provider(max_retries=99)


def test_cluster_yaml_passes_rays_schema_and_our_checks():
    from pathlib import Path

    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    path = Path(__file__).resolve().parents[2] / "compute" / "openstack-cluster.yaml"
    config = yaml.safe_load(path.read_text())
    validate_config(config)
    prepared = prepare_config(config)
    OpenStackNodeProvider.bootstrap_config(prepared)
    types = prepared["available_node_types"]
    assert prepared["provider"]["module"] == "compute.openstack.OpenStackNodeProvider"
    assert types[prepared["head_node_type"]]["resources"] == {"CPU": 0}
    assert "GPU" not in types["cpu_worker"]["resources"]
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert all(t.get("min_workers", 0) == 0 for n, t in types.items() if n != "head")
    assert 0 < prepared["idle_timeout_minutes"] <= 10
    assert any("pip install" in c and "eominer" in c for c in prepared["head_setup_commands"])
    broken = {**config, "available_node_types": {
        **config["available_node_types"],
        "cpu_worker": {**types["cpu_worker"], "node_config": {"flavor": "eo2.large"}}}}
    with pytest.raises(ConfigError, match=r"node type cpu_worker: node_config lacks"):
        OpenStackNodeProvider.bootstrap_config(broken)
