"""The autoscaling loop for real, on one machine.

A local Ray head runs Ray's own autoscaler (v1 monitor process) with OUR provider,
loaded through `provider: type: external`. The provider talks, through the real
openstacksdk, to a fake OpenStack served over HTTP on 127.0.0.1; the fake cloud's
"hypervisor" boots each server as a real local Ray node (a raylet with its own node ID,
the machinery of Ray's fake multi-node provider), the way cloud-init would run
`ray start` on a VM. The wheel has no `fake_multi_node/example.yaml`, so the cluster
config below is complete on its own.

The test submits more CPU tasks than the head can run and one GPU task, and watches:
servers created (CPU flavor for CPU tasks, GPU flavor only for the GPU task), tasks done
on the new nodes, servers deleted after the idle timeout. The timeline is printed and
written to tests/artifacts/autoscale_timeline.txt.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from compute.openstack.fakecloud import FakeOpenStack
from compute.openstack.node_provider import ray_node_id_for

ray = pytest.importorskip("ray")
from ray.autoscaler.tags import (  # noqa: E402
    NODE_KIND_HEAD,
    STATUS_UP_TO_DATE,
    TAG_RAY_CLUSTER_NAME,
    TAG_RAY_NODE_KIND,
    TAG_RAY_NODE_STATUS,
    TAG_RAY_USER_NODE_TYPE,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(400)]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CLUSTER = "eotest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayHypervisor:
    """Boots a 'server' as a local Ray worker node; destroys it by killing its processes."""

    def __init__(self, gcs_address: str, log) -> None:
        self.gcs_address = gcs_address
        self.log = log
        self.nodes: dict[str, object] = {}
        self._lock = threading.Lock()

    def boot(self, server_id: str, name: str, flavor: dict) -> None:
        from ray._private.node import Node
        from ray._private.parameter import RayParams

        params = RayParams(
            gcs_address=self.gcs_address,
            redis_address=self.gcs_address, min_worker_port=0, max_worker_port=0,
            dashboard_port=None, dashboard_agent_listen_port=0,
            num_cpus=flavor["vcpus"], num_gpus=flavor["gpus"], resources={},
            env_vars={"RAY_OVERRIDE_NODE_ID_FOR_TESTING": ray_node_id_for(server_id)},
        )
        node = Node(params, head=False, shutdown_at_exit=False, spawn_reaper=False)
        with self._lock:
            self.nodes[server_id] = node
        self.log(f"hypervisor: {name} booted as Ray node {ray_node_id_for(server_id)[:8]}")

    def destroy(self, server_id: str) -> None:
        with self._lock:
            node = self.nodes.pop(server_id, None)
        if node is not None:
            node.kill_all_processes(check_alive=False, allow_graceful=True)

    def destroy_all(self) -> None:
        for server_id in list(self.nodes):
            self.destroy(server_id)


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self._lock:
            self.lines.append(f"t={time.monotonic() - self.t0:6.1f}s  {text}")

    def text(self) -> str:
        return "\n".join(self.lines)


def cluster_config(cloud_url: str) -> dict:
    node = {"image": "Ubuntu 22.04 LTS", "network": "private", "security_groups": ["default"],
            "key_name": "ray-key"}
    return {
        "cluster_name": CLUSTER, "max_workers": 3, "upscaling_speed": 100.0,
        "idle_timeout_minutes": 0.1,
        "provider": {
            "type": "external", "module": "compute.openstack.OpenStackNodeProvider",
            "auth": {"auth_url": f"{cloud_url}/identity/v3", "username": "eominer",
                     "password": "secret", "project_name": "eominer",
                     "user_domain_name": "Default", "project_domain_name": "Default"},
            "api_timeout_s": 20, "max_retries": 2, "retry_backoff_s": 0.2,
            "build_timeout_s": 180,
            # several raylets share 127.0.0.1, so node IDs stand in for IPs; the nodes
            # start Ray themselves (cloud-init style), no SSH updaters
            "use_node_id_as_ip": True, "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "max_workers": 0,
                                 "node_config": {**node, "flavor": "eo1.large"}},
            "cpu_worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2,
                           "node_config": {**node, "flavor": "eo1.large"}},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "min_workers": 0,
                           "max_workers": 1, "node_config": {**node, "flavor": "vm.a6000.1"}},
        },
        "head_node_type": "ray.head.default",
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [],
        "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
        "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


@pytest.fixture
def autoscaling_cluster(tmp_path, monkeypatch):
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    monkeypatch.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
    monkeypatch.delenv("RAY_enable_autoscaler_v2", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    timeline = Timeline()
    cloud = FakeOpenStack(quota_instances=5)
    url, stop_http = cloud.serve()
    # the head is a server too, booted "by hand" as `ray up` would have done
    head_id = cloud.add_server(f"ray-{CLUSTER}-head-00000000", "eo1.large", {
        TAG_RAY_CLUSTER_NAME: CLUSTER, TAG_RAY_NODE_KIND: NODE_KIND_HEAD,
        TAG_RAY_USER_NODE_TYPE: "ray.head.default", TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE})
    config_path = tmp_path / "cluster.json"
    config_path.write_text(json.dumps(cluster_config(url)))
    port = free_port()
    head = Node(RayParams(
        gcs_server_port=port, num_cpus=1, num_gpus=0,
        resources={}, include_dashboard=False, min_worker_port=0, max_worker_port=0,
        dashboard_agent_listen_port=0, autoscaling_config=str(config_path),
        env_vars={"RAY_OVERRIDE_NODE_ID_FOR_TESTING": ray_node_id_for(head_id)},
    ), head=True, shutdown_at_exit=False, spawn_reaper=False)
    hypervisor = LocalRayHypervisor(head.gcs_address, timeline)
    cloud.hypervisor = hypervisor
    timeline("head up (1 CPU); autoscaler monitor started with provider type external")
    try:
        yield cloud, head, timeline
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.kill_all_processes(check_alive=False, allow_graceful=True)
        hypervisor.destroy_all()
        stop_http()


def test_autoscaler_grows_and_shrinks_openstack_nodes(autoscaling_cluster):
    cloud, head, log = autoscaling_cluster
    ray.init(address=head.gcs_address, log_to_driver=False)
    stop = threading.Event()

    def watch() -> None:
        seen: dict[str, str] = {}
        alive_before: set[str] = set()
        while not stop.is_set():
            with cloud._lock:
                servers = {s.id: (s.name, s.status, s.flavor["name"])
                           for s in cloud.servers.values()}
            for sid, (name, status, flavor) in servers.items():
                if seen.get(sid) != status:
                    log(f"cloud: server {name} ({flavor}) {status}")
                    seen[sid] = status
            for sid in set(seen) - set(servers):
                log(f"cloud: server {sid[:8]} deleted")
                del seen[sid]
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            for nid in alive - alive_before:
                log(f"ray: node {nid[:8]} joined ({len(alive)} alive)")
            for nid in alive_before - alive:
                log(f"ray: node {nid[:8]} left ({len(alive)} alive)")
            alive_before = alive
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    @ray.remote(num_cpus=1)
    def cpu_task(i: int) -> tuple[int, str]:
        time.sleep(3)
        return i, ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1, num_gpus=1)
    def gpu_task() -> tuple[str, list]:
        return ray.get_runtime_context().get_node_id(), ray.get_gpu_ids()

    try:
        log("submit 6 CPU tasks (3 s each, 1 CPU) and 1 GPU task")
        cpu_refs = [cpu_task.remote(i) for i in range(6)]
        gpu_ref = gpu_task.remote()
        cpu_results = ray.get(cpu_refs, timeout=240)
        gpu_node, gpu_ids = ray.get(gpu_ref, timeout=60)
        log(f"all tasks done: CPU tasks on {len({n for _, n in cpu_results})} nodes, "
            f"GPU task on node {gpu_node[:8]}")

        with cloud._lock:
            created = [(s.name, s.flavor["name"]) for s in cloud.servers.values()
                       if "-worker-" in s.name]
        creates = [r for r in cloud.requests if r == ("POST", "/compute/v2.1/servers")]
        assert len(creates) >= 2, creates  # our provider was asked for servers
        flavors = sorted(f for _, f in created)
        assert flavors.count("vm.a6000.1") == 1  # a GPU node for the GPU task only
        assert 1 <= flavors.count("eo1.large") <= 2  # CPU nodes, within max_workers

        assert sorted(i for i, _ in cpu_results) == list(range(6))
        head_node = ray_node_id_for(next(s.id for s in cloud.servers.values()
                                         if s.name.endswith("head-00000000")))
        assert {n for _, n in cpu_results} - {head_node}  # some ran on new nodes
        gpu_server = next(s.id for s in cloud.servers.values() if s.flavor["gpus"])
        assert gpu_node == ray_node_id_for(gpu_server)
        assert len(gpu_ids) == 1

        # idle timeout 0.1 min: the autoscaler asks our provider to delete the workers
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with cloud._lock:
                workers = [s for s in cloud.servers.values() if "-worker-" in s.name]
            if not workers:
                break
            time.sleep(1)
        log(f"worker servers left: {len(workers)}")
        assert workers == []
        deletes = [r for r in cloud.requests
                   if r[0] == "DELETE" and r[1].startswith("/compute/v2.1/servers/")]
        assert len(deletes) == len(creates)
        time.sleep(3)  # let the last raylet deregister
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        assert alive == [head_node]
        log(f"ray: only the head is left ({alive[0][:8]})")
    finally:
        stop.set()
        watcher.join(timeout=5)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "autoscale_timeline.txt").write_text(log.text() + "\n")
        print("\n--- autoscaling timeline ---\n" + log.text())
