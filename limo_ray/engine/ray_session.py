"""Start or join Ray: an embedded local cluster unless an address is given (never a stray cluster by accident)."""

from __future__ import annotations

import os
from typing import Any

from limo_ray.config import ClusterConfig


def init_ray(cluster: ClusterConfig, num_cpus: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """`ray.init` for a run: the config's address, else $RAY_ADDRESS, else a new local cluster."""
    import ray

    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "started": False}
    address = cluster.address or os.environ.get("RAY_ADDRESS")
    runtime_env = dict(cluster.runtime_env) or None
    if address:
        ray.init(address=address, runtime_env=runtime_env, **kwargs)
        return {"address": address, "started": False}
    # address="local" starts a fresh cluster even when a stale ray_current_cluster file points elsewhere.
    context = ray.init(
        address="local",
        num_cpus=num_cpus if num_cpus is not None else cluster.cpus_per_node,
        include_dashboard=kwargs.pop("include_dashboard", False),
        runtime_env=runtime_env,
        **kwargs,
    )
    return {"address": context.address_info.get("gcs_address", "local"), "started": True}
