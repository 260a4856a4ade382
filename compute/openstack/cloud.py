"""The few OpenStack calls the node provider needs, each with a bounded retry.

Every call goes through `CloudClient._call`, which retries what is transient (connect
and read timeouts, connection resets, 5xx, 429) a fixed number of times with a
growing pause, logs one line per failed attempt, and turns what is not transient into
a `CloudError` that names the operation. A missing server (404) is not an error here:
getters return None and deletes return False, because a server can vanish behind the
autoscaler's back and that only means it is terminated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from compute.openstack.config import ProviderSettings, ServerSpec
from eominer.errors import CloudError, CloudQuotaError, require

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Server:
    """What the provider keeps of a Nova server."""

    id: str
    name: str
    status: str
    metadata: dict[str, str]
    created: datetime | None
    fixed_ips: tuple[str, ...]
    floating_ips: tuple[str, ...]
    fault: str = ""

    @classmethod
    def from_sdk(cls, server: Any) -> Server:
        fixed, floating = [], []
        for entries in (server.addresses or {}).values():
            for entry in entries:
                if entry.get("version", 4) != 4:
                    continue
                kind = entry.get("OS-EXT-IPS:type", "fixed")
                (floating if kind == "floating" else fixed).append(entry["addr"])
        fault = server.fault.get("message", "") if isinstance(server.fault, dict) else ""
        return cls(
            id=server.id, name=server.name or "", status=(server.status or "").upper(),
            metadata=dict(server.metadata or {}), created=_parse_time(server.created_at),
            fixed_ips=tuple(fixed), floating_ips=tuple(floating), fault=fault,
        )

    def age_s(self, now: datetime | None = None) -> float:
        if self.created is None:
            return 0.0
        return ((now or datetime.now(UTC)) - self.created).total_seconds()


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_quota(exc: Exception) -> bool:
    status = getattr(exc, "status_code", None)
    text = str(exc).lower()
    return status == 413 or (status == 403 and ("quota" in text or "limit" in text))


class CloudClient:
    """openstacksdk behind bounded retries; one instance per provider."""

    def __init__(self, settings: ProviderSettings, *, sleep: Callable[[float], None] = time.sleep,
                 connection: Any = None) -> None:
        self.settings = settings
        self._sleep = sleep
        self._conn = connection
        self._resolved: dict[tuple[str, str], str] = {}

    # ---------------------------------------------------------------- plumbing
    @property
    def conn(self) -> Any:
        """The openstacksdk Connection, opened on first use (never at import)."""
        if self._conn is None:
            openstack = require("openstack", "openstack", "the OpenStack node provider")
            s = self.settings
            # The SDK's own retries are off: ours are bounded and logged in one place.
            kwargs: dict[str, Any] = {"api_timeout": s.api_timeout_s, "connect_retries": 0,
                                      "status_code_retries": 0}
            if s.region:
                kwargs["region_name"] = s.region
            if s.cloud:
                self._conn = openstack.connect(cloud=s.cloud, **kwargs)
            elif s.auth:
                self._conn = openstack.connection.Connection(**s.auth, **kwargs)
            else:
                self._conn = openstack.connect(**kwargs)
        return self._conn

    def _transient(self, exc: Exception) -> bool:
        import keystoneauth1.exceptions as ksa
        import openstack.exceptions as ose
        import requests

        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            ksa.RetriableConnectionFailure, ksa.ConnectionError)):
            return True
        if isinstance(exc, ose.HttpException):
            status = exc.status_code or 0
            return status >= 500 or status == 429
        return False

    def _call(self, op: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one API call with at most `max_retries` retries of transient failures."""
        import openstack.exceptions as ose

        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return fn(*args, **kwargs)
            except ose.NotFoundException:
                raise
            except Exception as exc:  # classified below; never swallowed
                if _is_quota(exc):
                    logger.error("openstack %s refused: quota exceeded (%s)", op, exc)
                    raise CloudQuotaError(
                        f"OpenStack refused {op}: project quota exceeded ({exc}); free "
                        "servers or cores, lower max_workers, or ask the cloud for more quota"
                    ) from exc
                if not self._transient(exc):
                    logger.error("openstack %s failed, not retried: %s", op, exc)
                    raise CloudError(f"OpenStack {op} failed: {exc}") from exc
                if attempt == attempts:
                    logger.error("openstack %s failed after %d attempts: %s", op, attempts, exc)
                    raise CloudError(
                        f"OpenStack {op} failed after {attempts} attempts "
                        f"(timeout {self.settings.api_timeout_s}s each): {exc}; check that "
                        "the cloud's API is reachable from the head node"
                    ) from exc
                pause = self.settings.retry_backoff_s * 2 ** (attempt - 1)
                logger.warning("openstack %s failed (attempt %d/%d): %s; retrying in %.1fs",
                               op, attempt, attempts, exc, pause)
                self._sleep(pause)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _resolve(self, kind: str, name_or_id: str, finder: Callable[..., Any]) -> str:
        key = (kind, name_or_id)
        if key not in self._resolved:
            import openstack.exceptions as ose

            try:
                found = self._call(f"find {kind} {name_or_id!r}", finder, name_or_id,
                                   ignore_missing=False)
            except ose.NotFoundException as exc:
                raise CloudError(
                    f"OpenStack {kind} {name_or_id!r} not found: fix node_config.{kind} in "
                    f"the cluster YAML (`openstack {kind} list` shows what exists)"
                ) from exc
            self._resolved[key] = found.id
        return self._resolved[key]

    # ---------------------------------------------------------------- servers
    def create_server(self, name: str, spec: ServerSpec, metadata: dict[str, str]) -> str:
        """Ask Nova for one server; returns its ID at once (it boots in the background)."""
        c = self.conn
        flavor_id = self._resolve("flavor", spec.flavor, c.compute.find_flavor)
        image_id = self._resolve("image", spec.image, c.image.find_image)
        network_id = self._resolve("network", spec.network, c.network.find_network)
        kwargs: dict[str, Any] = {
            "name": name, "flavor_id": flavor_id, "image_id": image_id,
            "networks": [{"uuid": network_id}],
            "security_groups": [{"name": g} for g in spec.security_groups],
            "metadata": {**dict(spec.metadata), **metadata},
        }
        if spec.key_name:
            kwargs["key_name"] = spec.key_name
        if spec.user_data:
            import base64

            kwargs["user_data"] = base64.b64encode(spec.user_data.encode()).decode()
        if spec.availability_zone:
            kwargs["availability_zone"] = spec.availability_zone
        server = self._call(f"create server {name}", c.compute.create_server, **kwargs)
        logger.info("openstack created server %s (%s), flavor %s", name, server.id, spec.flavor)
        return server.id

    def list_servers(self, name_prefix: str) -> list[Server]:
        """Servers whose name starts with `name_prefix` (Nova filters names by regex)."""
        import re

        servers = self._call("list servers", lambda: list(
            self.conn.compute.servers(details=True, name="^" + re.escape(name_prefix))))
        return [Server.from_sdk(s) for s in servers]

    def get_server(self, server_id: str) -> Server | None:
        import openstack.exceptions as ose

        try:
            return Server.from_sdk(self._call(f"get server {server_id}",
                                              self.conn.compute.get_server, server_id))
        except ose.NotFoundException:
            return None

    def delete_server(self, server_id: str) -> bool:
        """Delete a server and release its floating IPs; False if it was already gone."""
        import openstack.exceptions as ose

        self.release_floating_ips(server_id)
        try:
            self._call(f"delete server {server_id}", self.conn.compute.delete_server,
                       server_id, ignore_missing=False)
        except ose.NotFoundException:
            logger.warning("openstack server %s was already gone (deleted behind our back)",
                           server_id)
            return False
        logger.info("openstack deleted server %s", server_id)
        return True

    def set_metadata(self, server_id: str, metadata: dict[str, str]) -> bool:
        import openstack.exceptions as ose

        try:
            self._call(f"set metadata of {server_id}", self.conn.compute.set_server_metadata,
                       server_id, **metadata)
        except ose.NotFoundException:
            return False
        return True

    # ---------------------------------------------------------------- floating IPs
    def attach_floating_ip(self, server_id: str, network: str) -> str | None:
        """Allocate a floating IP on `network` and bind it to the server's first port."""
        c = self.conn
        network_id = self._resolve("network", network, c.network.find_network)
        ports = self._call(f"list ports of {server_id}",
                           lambda: list(c.network.ports(device_id=server_id)))
        if not ports:
            return None  # not wired yet; the provider tries again on its next pass
        fip = self._call(f"create floating ip for {server_id}", c.network.create_ip,
                         floating_network_id=network_id, port_id=ports[0].id)
        logger.info("openstack attached floating ip %s to server %s",
                    fip.floating_ip_address, server_id)
        return fip.floating_ip_address

    def release_floating_ips(self, server_id: str) -> int:
        """Free the floating IPs bound to a server's ports (Nova leaves them allocated)."""
        import openstack.exceptions as ose

        c = self.conn
        ports = self._call(f"list ports of {server_id}",
                           lambda: list(c.network.ports(device_id=server_id)))
        released = 0
        for port in ports:
            ips = self._call(f"list floating ips of port {port.id}",
                             lambda p=port: list(c.network.ips(port_id=p.id)))
            for ip in ips:
                try:
                    self._call(f"delete floating ip {ip.id}", c.network.delete_ip, ip,
                               ignore_missing=False)
                    released += 1
                except ose.NotFoundException:
                    continue
        return released
