"""Start or join Ray: an embedded local cluster unless an address is given (never a stray cluster by accident)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.config import ClusterConfig
from limo_ray.errors import LimoError


def init_ray(cluster: ClusterConfig, num_cpus: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """`ray.init` for a run: the config's address (`auto`: this node's cluster), else $RAY_ADDRESS, else a new
    local cluster. A config that asks for GPUs stops here, in one line, when Ray has none and cannot get any.

    Returns `address`, `started` (a local Ray started here) and `context` (what `ray.init` returned; None when
    Ray was running already)."""
    import ray

    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "started": False, "context": None}
    address = cluster.address or os.environ.get("RAY_ADDRESS")
    runtime_env = dict(cluster.runtime_env) or None
    include_dashboard = kwargs.pop("include_dashboard", False)  # a running cluster has its own, or none
    if address:
        try:
            context = ray.init(address=address, runtime_env=runtime_env, **kwargs)
        except ConnectionError as exc:
            raise LimoError(
                f"no Ray cluster reachable at cluster.address={address!r} ({' '.join(str(exc).split())[:200]}); "
                "start one (`ray start --head`, KubeRay, `ray up`) or run where it runs, or set cluster.address"
            ) from None
        require_gpus(cluster, where=f"the cluster at {address}")
        return {"address": address, "started": False, "context": context}
    # address="local" starts a fresh cluster even when a stale ray_current_cluster file points elsewhere.
    context = ray.init(
        address="local",
        num_cpus=num_cpus if num_cpus is not None else cluster.cpus_per_node,
        include_dashboard=include_dashboard,
        runtime_env=runtime_env,
        **kwargs,
    )
    try:
        require_gpus(cluster, where="the local Ray this command started (cluster.address is null)")
    except LimoError:
        ray.shutdown()
        raise
    return {"address": context.address_info.get("gcs_address", "local"), "started": True, "context": context}


@dataclass(frozen=True)
class RaySession:
    """The Ray a `limo` command runs on, as the console reports it."""

    address: str
    started: bool  # a local Ray this command started (it stops with the command)
    dashboard_url: str | None  # None: started without the dashboard, or unknown (a Ray client)
    metrics_address: str | None  # this node's Prometheus endpoint, host:port
    logs_dir: Path | None  # this node's Ray session logs (workers' stdout/stderr, raylet, GCS), if on this machine


def start_job_ray(cluster: ClusterConfig, stream_worker_logs: bool) -> RaySession:
    """Ray for one `limo` job, started before its first stage so the console can name the dashboard at once.

    A local Ray gets its dashboard (the URL is printed); workers' stdout/stderr (vLLM's engine logs among them)
    stay in Ray's session log files unless `stream_worker_logs` (`--verbose`). The later `init_ray` calls of
    the stages find this Ray running and use it as it is.
    """
    info = init_ray(cluster, include_dashboard=True, log_to_driver=stream_worker_logs)
    context = info["context"]
    address_info: dict[str, Any] = getattr(context, "address_info", None) or {}
    dashboard = getattr(context, "dashboard_url", None)
    port = address_info.get("metrics_export_port")
    session_dir = address_info.get("session_dir")
    logs = Path(session_dir) / "logs" if session_dir else None
    return RaySession(
        address=str(info["address"]),
        started=bool(info["started"]),
        dashboard_url=f"http://{dashboard}" if dashboard and "://" not in dashboard else dashboard,
        metrics_address=f"{address_info.get('node_ip_address', '127.0.0.1')}:{port}" if port else None,
        logs_dir=logs if logs is not None and logs.is_dir() else None,
    )


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
