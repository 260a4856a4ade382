"""Ray autoscaler support for OpenStack clouds.

- `node_provider.OpenStackNodeProvider`: the autoscaler's NodeProvider (Nova servers);
- `cloud.CloudClient`: the openstacksdk calls it makes, each with a bounded, logged retry;
- `config`: the provider and node_config settings of the cluster YAML, checked once;

The cluster YAML may name `compute.openstack.OpenStackNodeProvider`; it is loaded lazily
so that importing this package does not import Ray.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OpenStackNodeProvider"]


def __getattr__(name: str) -> Any:
    if name == "OpenStackNodeProvider":
        from compute.openstack.node_provider import OpenStackNodeProvider

        return OpenStackNodeProvider
    raise AttributeError(f"module 'compute.openstack' has no attribute {name!r}")
