"""Settings of the OpenStack node provider, read from the cluster YAML.

Two places in the YAML feed it: the `provider:` section (how to reach the cloud, how
patient to be) and each node type's `node_config:` (what server to boot). Both are
checked here, once, so a typo fails at start-up with a message that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eominer.errors import ConfigError

# Keys of `provider:` that Ray itself reads; accepted and ignored here.
_RAY_PROVIDER_KEYS = {
    "type", "module", "use_node_id_as_ip", "disable_node_updaters",
    "disable_launch_config_check", "foreground_node_launch", "cache_stopped_nodes",
    "use_internal_ips", "head_ip", "worker_liveness_check",
}
_PROVIDER_KEYS = {
    "cloud", "auth", "region", "api_timeout_s", "max_retries", "retry_backoff_s",
    "build_timeout_s", "name_prefix",
} | _RAY_PROVIDER_KEYS
_NODE_KEYS = {
    "flavor", "image", "network", "security_groups", "key_name", "floating_ip_network",
    "user_data", "availability_zone", "metadata",
}


def _unknown(given: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise ConfigError(
            f"unknown key(s) {extra} in {where}: expected some of {sorted(allowed)}; "
            "check the spelling in the cluster YAML"
        )


@dataclass(frozen=True)
class ProviderSettings:
    """How the provider reaches the cloud and how long it waits for it.

    `cloud` names an entry of clouds.yaml; `auth` is an inline keystone auth dict
    (auth_url, username, password, project_name, user_domain_name, project_domain_name).
    Without either, openstacksdk reads the usual OS_* environment variables.
    """

    cloud: str | None = None
    auth: dict[str, str] = field(default_factory=dict)
    region: str | None = None
    api_timeout_s: float = 30.0
    max_retries: int = 3
    retry_backoff_s: float = 2.0
    build_timeout_s: float = 900.0
    name_prefix: str = "ray"
    use_node_id_as_ip: bool = False
    disable_node_updaters: bool = False
    use_internal_ips: bool = False

    def __post_init__(self) -> None:
        if self.api_timeout_s <= 0 or self.build_timeout_s <= 0:
            raise ConfigError(
                f"provider timeouts must be > 0: got api_timeout_s={self.api_timeout_s}, "
                f"build_timeout_s={self.build_timeout_s}"
            )
        if not 0 <= self.max_retries <= 20:
            raise ConfigError(f"provider max_retries must be in 0..20, got {self.max_retries}")
        if self.retry_backoff_s < 0:
            raise ConfigError(f"provider retry_backoff_s must be >= 0, got {self.retry_backoff_s}")

    @classmethod
    def from_provider_config(cls, config: dict[str, Any]) -> ProviderSettings:
        _unknown(config, _PROVIDER_KEYS, "provider")
        return cls(
            cloud=config.get("cloud"),
            auth=dict(config.get("auth") or {}),
            region=config.get("region"),
            api_timeout_s=float(config.get("api_timeout_s", 30.0)),
            max_retries=int(config.get("max_retries", 3)),
            retry_backoff_s=float(config.get("retry_backoff_s", 2.0)),
            build_timeout_s=float(config.get("build_timeout_s", 900.0)),
            name_prefix=str(config.get("name_prefix", "ray")),
            use_node_id_as_ip=bool(config.get("use_node_id_as_ip", False)),
            disable_node_updaters=bool(config.get("disable_node_updaters", False)),
            use_internal_ips=bool(config.get("use_internal_ips", False)),
        )


@dataclass(frozen=True)
class ServerSpec:
    """What server to boot for one node type (names or IDs, resolved by the client)."""

    flavor: str
    image: str
    network: str
    security_groups: tuple[str, ...] = ("default",)
    key_name: str | None = None
    floating_ip_network: str | None = None
    user_data: str | None = None
    availability_zone: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_node_config(cls, node_config: dict[str, Any]) -> ServerSpec:
        _unknown(node_config, _NODE_KEYS, "node_config")
        missing = [k for k in ("flavor", "image", "network") if not node_config.get(k)]
        if missing:
            raise ConfigError(
                f"node_config lacks {missing}: every node type needs a flavor, an image and "
                f"a network (names or IDs); got keys {sorted(node_config)}"
            )
        groups = node_config.get("security_groups", ["default"])
        if isinstance(groups, str):
            groups = [groups]
        return cls(
            flavor=str(node_config["flavor"]),
            image=str(node_config["image"]),
            network=str(node_config["network"]),
            security_groups=tuple(str(g) for g in groups),
            key_name=node_config.get("key_name"),
            floating_ip_network=node_config.get("floating_ip_network"),
            user_data=node_config.get("user_data"),
            availability_zone=node_config.get("availability_zone"),
            metadata=tuple(sorted((str(k), str(v))
                                  for k, v in (node_config.get("metadata") or {}).items())),
        )
