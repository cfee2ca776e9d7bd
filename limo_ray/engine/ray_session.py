"""Start or join Ray: an embedded local cluster unless an address is given (never a stray cluster by accident)."""

from __future__ import annotations

import os
from typing import Any

from limo_ray.config import ClusterConfig
from limo_ray.errors import LimoError


def init_ray(cluster: ClusterConfig, num_cpus: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """`ray.init` for a run: the config's address (`auto`: this node's cluster), else $RAY_ADDRESS, else a new
    local cluster. A config that asks for GPUs stops here, in one line, when Ray has none and cannot get any."""
    import ray

    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "started": False}
    address = cluster.address or os.environ.get("RAY_ADDRESS")
    runtime_env = dict(cluster.runtime_env) or None
    if address:
        try:
            ray.init(address=address, runtime_env=runtime_env, **kwargs)
        except ConnectionError as exc:
            raise LimoError(
                f"no Ray cluster reachable at cluster.address={address!r} ({' '.join(str(exc).split())[:200]}); "
                "start one (`ray start --head`, KubeRay, `ray up`) or run where it runs, or set cluster.address"
            ) from None
        require_gpus(cluster, where=f"the cluster at {address}")
        return {"address": address, "started": False}
    # address="local" starts a fresh cluster even when a stale ray_current_cluster file points elsewhere.
    context = ray.init(
        address="local",
        num_cpus=num_cpus if num_cpus is not None else cluster.cpus_per_node,
        include_dashboard=kwargs.pop("include_dashboard", False),
        runtime_env=runtime_env,
        **kwargs,
    )
    try:
        require_gpus(cluster, where="the local Ray this command started (cluster.address is null)")
    except LimoError:
        ray.shutdown()
        raise
    return {"address": context.address_info.get("gcs_address", "local"), "started": True}


def require_gpus(cluster: ClusterConfig, where: str) -> None:
    """A GPU config on a Ray with no GPUs, and no autoscaler that could add some, would wait forever."""
    if cluster.gpus_per_node == 0:
        return
    from limo_ray.engine.placement import cluster_gpus

    live, most = cluster_gpus()
    if live == 0 and not most:
        raise LimoError(
            f"the config asks for GPUs (cluster: {cluster.num_nodes} x {cluster.gpus_per_node}), but {where} has "
            "0 GPUs and no autoscaler that could add any; attach to the GPU cluster (cluster.address: auto on its "
            "head node, or RAY_ADDRESS), or use a CPU config"
        )
