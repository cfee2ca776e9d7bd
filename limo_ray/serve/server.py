"""Run the Serve application on this Ray: `run_server` starts (or joins) Ray and Serve, deploys the app, waits
until it answers or says in one line why it cannot (a replica that cannot be placed, an engine that fails to
start), and returns a `ServerHandle` that shuts down what it started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from limo_ray.config import RunConfig
from limo_ray.engine.placement import describe_bundles, free_resources, replica_placement, wait_until
from limo_ray.engine.spec import Device, EngineSpec
from limo_ray.errors import LimoError
from limo_ray.serve.app import DEFAULT_APP_NAME, AppArgs, app_args, build_app, engine_specs


@dataclass
class ServerHandle:
    """A running server: its base URL (append `/v1` for OpenAI clients) and how to stop it."""

    url: str
    models: list[str]
    app_name: str
    startup_s: float
    _stop_serve: bool = False
    _stop_ray: bool = False
    _stopped: bool = field(default=False, repr=False)

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def shutdown(self) -> None:
        """Delete the app; stop Serve and Ray too if `run_server` started them."""
        if self._stopped:
            return
        self._stopped = True
        import ray
        from ray import serve

        if not ray.is_initialized():
            return
        if self._stop_serve:
            serve.shutdown()
        else:
            serve.delete(self.app_name)
        if self._stop_ray:
            ray.shutdown()

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM, then shut down."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.shutdown()


def run_server(
    config: RunConfig,
    checkpoints: Mapping[str, str] | None = None,
    host: str | None = None,
    port: int | None = None,
    blocking: bool = False,
    device: Device | None = None,
    app_name: str = DEFAULT_APP_NAME,
    retry_after_s: int | None = None,
    route_prefix: str = "/",
    stream_worker_logs: bool = False,
) -> ServerHandle:
    """Start (or join) Ray, start Serve on host:port, deploy the app and wait until it answers.

    Binds `serve.host` (127.0.0.1 by default): exposing an endpoint beyond this machine is a decision the config
    makes. `host`/`port` take effect when this call starts Serve; joining a running Serve instance keeps its HTTP
    options (then give another `app_name` and `route_prefix`). With `blocking`, waits for Ctrl-C and shuts down
    before returning. The API key, if the variable named by `serve.api_key_env` is set, travels as its digest.

    A Ray this call starts keeps its workers' output (Serve's access lines, vLLM's engine logs) in its session
    log files unless `stream_worker_logs`: shipping every access line to this process costs CPU beside the engine
    (bench/RESULTS.md) and floods a console. A Ray already running keeps its own setting.
    """
    import ray
    from ray import serve

    from limo_ray.engine import init_ray
    from limo_ray.serve.ingress import key_digest

    specs = engine_specs(config, checkpoints, device)
    host = host or config.serve.host
    port = config.serve.port if port is None else port
    env_name = config.serve.api_key_env
    key = os.environ.get(env_name) if env_name else None
    cluster = config.cluster
    digest = key_digest(key) if key else None
    args = app_args(config.serve, specs, retry_after_s, digest, cluster.gpus_per_node, cluster.node_resources.serve)

    started = time.monotonic()
    ray_started = init_ray(config.cluster, log_to_driver=stream_worker_logs)["started"]
    serve_was_running = _serve_running()
    try:
        serve.start(http_options={"host": host, "port": port})
        deploy_and_wait(build_app(args), app_name, route_prefix, config.cluster.placement_timeout_s, specs, args)
    except Exception as exc:
        reason = _deploy_failure(app_name) or _root_cause(exc)
        # Leave nothing behind: not the failed app, and not a Serve or Ray this call started.
        with contextlib.suppress(Exception):
            if serve_was_running:
                serve.delete(app_name)
            else:
                serve.shutdown()
        if ray_started:
            ray.shutdown()
        if isinstance(exc, LimoError):
            raise
        raise LimoError(f"serve: the app did not start: {reason} (the Serve logs have the details)") from exc
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    handle = ServerHandle(
        url=f"http://{url_host}:{port}{route_prefix.rstrip('/')}",
        models=list(specs),
        app_name=app_name,
        startup_s=time.monotonic() - started,
        _stop_serve=not serve_was_running,
        _stop_ray=ray_started,
    )
    if blocking:
        handle.wait()
    return handle


def deploy_and_wait(
    app: Any,
    app_name: str,
    route_prefix: str | None,
    timeout_s: float,
    specs: Mapping[str, EngineSpec],
    args: Mapping[str, Any],
) -> None:
    """Deploy `app` and wait until it runs. A replica that cannot be placed would leave Serve waiting forever:
    past `timeout_s` the app is deleted and one line names the model, the bundles it asked for and what is free."""
    from ray import serve
    from ray.serve.api import _run

    _run(app, _blocking=False, name=app_name, route_prefix=route_prefix)

    def settled() -> bool:
        status = str(serve.status().applications[app_name].status).upper()
        return status.endswith(("RUNNING", "DEPLOY_FAILED", "UNHEALTHY"))

    if not wait_until(settled, timeout_s, interval_s=1.0):
        parsed = AppArgs.model_validate(dict(args))
        asks = []
        for name, spec in specs.items():
            # A replica without a group asks for the same resources as its one bundle.
            placement = replica_placement(spec, parsed.gpus_per_node, parsed.node_resources)
            asks.append(f"{name}: {max(parsed.min_replicas, 1)} x [{describe_bundles(placement.bundles)}]")
        with contextlib.suppress(Exception):
            serve.delete(app_name)
        raise LimoError(
            f"serve: the replicas could not be placed within {timeout_s:g} s ({'; '.join(asks)}); "
            f"the cluster has free: {free_resources()}"
        )
    status = str(serve.status().applications[app_name].status).upper()
    if not status.endswith("RUNNING"):
        raise RuntimeError(f"application {app_name} is {status}")


def _serve_running() -> bool:
    from ray import serve

    try:
        serve.status()
    except Exception:
        return False
    return True


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())[:600]


def _deploy_failure(app_name: str) -> str | None:
    """Why a deployment of the app failed, from Serve's status (serve.run's own error does not say)."""
    from ray import serve

    try:
        app = serve.status().applications[app_name]
    except Exception:
        return None
    for name, deployment in app.deployments.items():
        if deployment.message and str(deployment.status).upper().endswith(("UNHEALTHY", "DEPLOY_FAILED")):
            return f"deployment {name}: {_root_cause(deployment.message)}"
    return _root_cause(app.message) if app.message else None


def _root_cause(exc: BaseException | str) -> str:
    """The last `SomeError: message` line of a (possibly remote, traceback-carrying) error, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [i for i, line in enumerate(lines) if re.match(r"^[\w.]*(Error|Exception)\b.*:", line)]
    if not causes:
        return _one_line(exc)
    # pydantic and friends put the reason on the line after the error's name.
    tail = [line for line in lines[causes[-1] : causes[-1] + 3] if not line.startswith(("File ", "Traceback"))]
    return _one_line(" ".join(tail))
