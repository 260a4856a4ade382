"""Ray autoscaler NodeProvider for OpenStack clouds (CREODIAS and the like).

Loaded by Ray from the cluster YAML:

    provider:
      type: external
      module: compute.openstack.node_provider.OpenStackNodeProvider

Servers are named `<prefix>-<cluster>-<kind>-<8 hex>` and carry the autoscaler's tags
as Nova server metadata (`ray-cluster-name`, `ray-node-kind`, `ray-user-node-type`, ...),
so a restarted head finds its nodes again and two clusters in one project never see
each other's servers. A server that goes to ERROR, or stays in BUILD longer than
`build_timeout_s`, is deleted with a log line and no longer reported: the autoscaler
then launches a replacement if the load still asks for it.

With `disable_node_updaters: true` the nodes are expected to start Ray on their own
(cloud-init `user_data` running `ray start --address=...`), so an ACTIVE server is
reported as up-to-date; otherwise Ray's updaters set that tag over SSH as usual.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from ray.autoscaler.node_launch_exception import NodeLaunchException
from ray.autoscaler.node_provider import NodeProvider
from ray.autoscaler.tags import (
    NODE_KIND_WORKER,
    STATUS_UP_TO_DATE,
    TAG_RAY_CLUSTER_NAME,
    TAG_RAY_NODE_KIND,
    TAG_RAY_NODE_STATUS,
)

from compute.openstack.cloud import CloudClient, Server
from compute.openstack.config import ProviderSettings, ServerSpec
from eominer.errors import CloudError, CloudQuotaError

logger = logging.getLogger(__name__)

# Metadata key remembering which network a node's floating IP comes from (set at create,
# so a restarted autoscaler still attaches the IP of a server it did not boot itself).
FLOATING_NETWORK_KEY = "eominer-floating-ip-network"
_GONE = {"DELETED", "SOFT_DELETED", "SHELVED_OFFLOADED"}


def ray_node_id_for(server_id: str) -> str:
    """The Ray node ID (56 hex digits) a server's raylet uses when IDs stand in for IPs.

    Only for `use_node_id_as_ip` clusters, where several raylets share one host (tests,
    laptops): the raylet is started with RAY_OVERRIDE_NODE_ID_FOR_TESTING set to this.
    """
    return uuid.UUID(server_id).hex + "0" * 24


class OpenStackNodeProvider(NodeProvider):
    """Creates, lists, tags and deletes Nova servers for one Ray cluster."""

    def __init__(self, provider_config: dict[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        self.settings = ProviderSettings.from_provider_config(provider_config)
        self.client = CloudClient(self.settings)
        self._lock = threading.RLock()
        self._servers: dict[str, Server] = {}

    # ---------------------------------------------------------------- listing
    @property
    def name_prefix(self) -> str:
        return f"{self.settings.name_prefix}-{self.cluster_name}-"

    def non_terminated_nodes(self, tag_filters: dict[str, str]) -> list[str]:
        servers = self.client.list_servers(self.name_prefix)
        now = datetime.now(UTC)
        alive: dict[str, Server] = {}
        for server in servers:
            if server.metadata.get(TAG_RAY_CLUSTER_NAME) != self.cluster_name:
                continue  # same name prefix, another cluster or a hand-made server
            if TAG_RAY_NODE_KIND not in server.metadata:
                logger.warning("openstack server %s (%s) has the cluster's tag but no %s: "
                               "ignoring it", server.name, server.id, TAG_RAY_NODE_KIND)
                continue
            if server.status in _GONE:
                continue
            if server.status == "ERROR":
                logger.error("openstack server %s (%s) is in ERROR (%s): deleting it",
                             server.name, server.id, server.fault or "no fault given")
                self._delete_quietly(server.id)
                continue
            if server.status == "BUILD" and server.age_s(now) > self.settings.build_timeout_s:
                logger.error("openstack server %s (%s) stuck in BUILD for %.0fs (limit %.0fs): "
                             "deleting it", server.name, server.id, server.age_s(now),
                             self.settings.build_timeout_s)
                self._delete_quietly(server.id)
                continue
            if (server.status == "ACTIVE" and FLOATING_NETWORK_KEY in server.metadata
                    and not server.floating_ips):
                server = self._with_floating_ip(server)
            alive[server.id] = server
        with self._lock:
            self._servers = alive
        return [sid for sid in alive
                if all(self.node_tags(sid).get(k) == v for k, v in tag_filters.items())]

    def _with_floating_ip(self, server: Server) -> Server:
        try:
            address = self.client.attach_floating_ip(server.id,
                                                     server.metadata[FLOATING_NETWORK_KEY])
        except CloudError as exc:  # logged by the client; next pass tries again
            logger.warning("no floating ip for %s yet: %s", server.name, exc)
            return server
        if address is None:
            return server
        return dataclasses.replace(server, floating_ips=(address,))

    def _delete_quietly(self, server_id: str) -> None:
        try:
            self.client.delete_server(server_id)
        except CloudError as exc:  # the next listing sees it again and retries
            logger.error("could not delete openstack server %s: %s", server_id, exc)

    def _server(self, node_id: str) -> Server | None:
        with self._lock:
            server = self._servers.get(node_id)
        if server is None:
            server = self.client.get_server(node_id)
            if server is not None:
                with self._lock:
                    self._servers[node_id] = server
        return server

    # ---------------------------------------------------------------- node state
    def is_running(self, node_id: str) -> bool:
        server = self._server(node_id)
        return server is not None and server.status == "ACTIVE"

    def is_terminated(self, node_id: str) -> bool:
        server = self._server(node_id)
        return server is None or server.status in _GONE

    def node_tags(self, node_id: str) -> dict[str, str]:
        server = self._server(node_id)
        if server is None:
            return {}
        tags = {k: v for k, v in server.metadata.items() if k.startswith("ray-")}
        if self.settings.disable_node_updaters and server.status == "ACTIVE":
            tags[TAG_RAY_NODE_STATUS] = STATUS_UP_TO_DATE
        return tags

    def set_node_tags(self, node_id: str, tags: dict[str, str]) -> None:
        if not self.client.set_metadata(node_id, {k: str(v) for k, v in tags.items()}):
            logger.warning("openstack server %s vanished while tagging it %s", node_id, tags)
            return
        with self._lock:
            server = self._servers.get(node_id)
            if server is not None:
                self._servers[node_id] = dataclasses.replace(
                    server, metadata={**server.metadata, **tags})

    def internal_ip(self, node_id: str) -> str | None:
        if self.settings.use_node_id_as_ip:
            return ray_node_id_for(node_id)
        server = self._server(node_id)
        if server is not None and not server.fixed_ips:  # still wiring: ask again
            server = self._refresh(node_id)
        return server.fixed_ips[0] if server and server.fixed_ips else None

    def external_ip(self, node_id: str) -> str | None:
        if self.settings.use_node_id_as_ip:
            return ray_node_id_for(node_id)
        server = self._server(node_id)
        if server is not None and not server.floating_ips:
            server = self._refresh(node_id)
        return server.floating_ips[0] if server and server.floating_ips else None

    def _refresh(self, node_id: str) -> Server | None:
        server = self.client.get_server(node_id)
        with self._lock:
            if server is None:
                self._servers.pop(node_id, None)
            else:
                self._servers[node_id] = server
        return server

    # ---------------------------------------------------------------- create, terminate
    def create_node(self, node_config: dict[str, Any], tags: dict[str, str],
                    count: int) -> dict[str, Server]:
        spec = ServerSpec.from_node_config(node_config)
        kind = tags.get(TAG_RAY_NODE_KIND, NODE_KIND_WORKER)
        metadata = {**{k: str(v) for k, v in tags.items()},
                    TAG_RAY_CLUSTER_NAME: self.cluster_name}
        if spec.floating_ip_network:
            metadata[FLOATING_NETWORK_KEY] = spec.floating_ip_network
        created: dict[str, Server] = {}
        for _ in range(count):
            name = f"{self.name_prefix}{kind}-{uuid.uuid4().hex[:8]}"
            try:
                server_id = self.client.create_server(name, spec, metadata)
            except CloudQuotaError as exc:
                # Ray's launcher logs this, counts the failure and keeps the loop going.
                raise NodeLaunchException(
                    "QuotaExceeded",
                    f"created {len(created)} of {count} {spec.flavor} servers: {exc}",
                    sys.exc_info(),
                ) from exc
            except CloudError as exc:
                raise NodeLaunchException(
                    "CloudError", f"created {len(created)} of {count} servers: {exc}",
                    sys.exc_info(),
                ) from exc
            server = Server(id=server_id, name=name, status="BUILD", metadata=dict(metadata),
                            created=datetime.now(UTC), fixed_ips=(), floating_ips=())
            with self._lock:
                self._servers[server_id] = server
            created[server_id] = server
        return created

    def terminate_node(self, node_id: str) -> None:
        if not self.client.delete_server(node_id):
            logger.info("node %s was already terminated", node_id)
        with self._lock:
            self._servers.pop(node_id, None)

    @staticmethod
    def bootstrap_config(cluster_config: dict[str, Any]) -> dict[str, Any]:
        """Check every node type's node_config before `ray up` boots anything."""
        ProviderSettings.from_provider_config(cluster_config["provider"])
        for name, node_type in cluster_config.get("available_node_types", {}).items():
            try:
                ServerSpec.from_node_config(node_type.get("node_config", {}))
            except Exception as exc:
                raise type(exc)(f"node type {name}: {exc}") from exc
        return cluster_config
