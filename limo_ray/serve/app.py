"""The Serve application: `build_app(args)` (the import path a RayService names), its args from a run config
(`engine_specs`, `app_args`, `serving_groups`) and `serve_config`.

One model: one deployment whose replicas hold the engine and answer HTTP themselves (`ModelIngress`). Several:
one `ModelServer` deployment per model (each with its own autoscaling and queue bound) behind one
`OpenAIIngress` that routes by the request's `model`. `build_app` takes plain JSON-able args (`AppArgs`), so the
same application starts from `run_server` (`serve/server.py`), from `serve run limo_ray.serve.app:build_app`,
or from a KubeRay RayService's `serveConfigV2` that `serve_config()` writes (`serve build` format).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from limo_ray.config import RunConfig, ServeConfig, ServeReplicaConfig, StrictModel
from limo_ray.engine.placement import actor_options, replica_placement
from limo_ray.engine.spec import Device, EngineSpec, device_for, spec_from_model_config
from limo_ray.errors import LimoError, one_line

IMPORT_PATH = "limo_ray.serve.app:build_app"
DEFAULT_APP_NAME = "limo"


class ModelArgs(StrictModel):
    name: str = Field(min_length=1, description="the name clients send as `model`")
    engine: dict[str, Any] = Field(description="EngineSpec fields (limo_ray.engine.EngineSpec)")


class AppArgs(ServeReplicaConfig):
    """Everything `build_app` needs; JSON-able, so it can live in a RayService's `serveConfigV2`. The scaling,
    queue and key fields are the run config's `serve:` ones (`ServeReplicaConfig`), flat beside `models`."""

    models: list[ModelArgs] = Field(min_length=1)
    # GPUs per node (cluster.gpus_per_node), for the placement rule: a replica bigger than a node spans nodes
    # (PACK) instead of asking one node for all of it (STRICT_PACK). 0: every replica fits one node.
    gpus_per_node: int = Field(default=0, ge=0)
    # Custom resources each replica (each bundle of its group) asks for: cluster.node_resources.serve.
    node_resources: dict[str, float] = Field(default_factory=dict)
    # Set by run_server from the driver's environment; a RayService leaves it out and the ingress reads the env var.
    api_key_sha256: str | None = None


def build_app(args: Mapping[str, Any]) -> Any:
    """The Serve application for `args` (an `AppArgs` dict): one ModelServer deployment per model + the ingress."""
    from ray import serve
    from ray.serve.config import BackpressureConfig

    from limo_ray.serve.ingress import ModelIngress, OpenAIIngress
    from limo_ray.serve.model_server import ModelServer, spec_from_dict
    from limo_ray.serve.protocol import model_card

    try:
        parsed = AppArgs.model_validate(dict(args))
    except ValidationError as exc:
        raise LimoError(f"serve app args: {one_line(exc)[:600]}") from None
    if parsed.min_replicas > parsed.max_replicas:
        raise LimoError(f"serve: min_replicas {parsed.min_replicas} > max_replicas {parsed.max_replicas}")
    names = [m.name for m in parsed.models]
    if len(set(names)) != len(names):
        raise LimoError(f"serve: model names must be unique, got {names}")
    backpressure = BackpressureConfig(status_code=503, retry_after_s=parsed.retry_after_s)
    created = int(time.time())
    if len(parsed.models) == 1:
        # One model: its replica is also the HTTP ingress (one hop per request); the proxy's queue in front of
        # it is the bound, answered 503 + Retry-After by Serve's backpressure config.
        (entry,) = parsed.models
        spec = spec_from_dict(entry.engine)
        options = model_deployment_options(spec, entry.name, parsed)
        return (
            serve.deployment(ModelIngress)
            .options(**options, backpressure_config=backpressure)
            .bind(
                entry.name,
                entry.engine,
                model_card(entry.name, spec.max_model_len, created),
                parsed.api_key_sha256,
                parsed.api_key_env,
                parsed.retry_after_s,
            )
        )
    handles, cards = {}, {}
    for entry in parsed.models:
        spec = spec_from_dict(entry.engine)
        deployment = serve.deployment(ModelServer).options(**model_deployment_options(spec, entry.name, parsed))
        handles[entry.name] = deployment.bind(entry.name, entry.engine)
        cards[entry.name] = model_card(entry.name, spec.max_model_len, created)
    # The router only forwards: it may hold every request the model queues can take, and no more.
    ingress_ongoing = len(names) * (parsed.max_replicas * parsed.max_ongoing_requests + parsed.max_queued_requests) + 64
    return OpenAIIngress.options(
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=ingress_ongoing,
        max_queued_requests=parsed.max_queued_requests,
        backpressure_config=backpressure,
    ).bind(handles, cards, parsed.api_key_sha256, parsed.api_key_env, parsed.retry_after_s)


def model_deployment_options(spec: EngineSpec, name: str, args: AppArgs) -> dict[str, Any]:
    """Serve options for one model's deployment: the engine's resources, queue bound and scaling."""
    options: dict[str, Any] = {
        "name": deployment_name(name),
        "ray_actor_options": actor_options(spec, args.node_resources, grouped=spec.needs_placement_group()),
        "max_ongoing_requests": args.max_ongoing_requests,
        # Past this many waiting (per proxy or router), a request is refused at once: 503 + Retry-After. Serve
        # takes no 0 (and -1 would mean unbounded, which we never want): 1 is the smallest bound.
        "max_queued_requests": args.max_queued_requests,
        # A tiny CPU engine starts in ~20 s, a 32B one in minutes: give the health check room.
        "health_check_timeout_s": 60,
        "graceful_shutdown_timeout_s": 30,
        # An engine that failed to start twice (bad weights, no memory) will not start the third time; Serve's
        # default of 20 tries would keep `run_server` waiting for many minutes before it says so.
        "max_constructor_retry_count": 2,
    }
    if spec.needs_placement_group():
        placement = replica_placement(spec, args.gpus_per_node, args.node_resources)
        options["placement_group_bundles"] = [dict(b) for b in placement.bundles]
        options["placement_group_strategy"] = placement.strategy
    if args.min_replicas == args.max_replicas:
        options["num_replicas"] = args.max_replicas
    else:
        options["autoscaling_config"] = {
            "min_replicas": args.min_replicas,
            "max_replicas": args.max_replicas,
            "initial_replicas": max(args.min_replicas, 1),
            "target_ongoing_requests": args.target_ongoing_requests,
        }
    return options


def deployment_name(model_name: str) -> str:
    return "model-" + re.sub(r"[^A-Za-z0-9_-]+", "_", model_name)


# ----------------------------------------------------------------------------------------------- from a config


def engine_specs(
    config: RunConfig,
    checkpoints: Mapping[str, str] | None = None,
    device: Device | None = None,
) -> dict[str, EngineSpec]:
    """Specs for the models to serve: `checkpoints` (name -> folder or hub name), else `serve.models`.

    A checkpoint whose name is under `models:` takes that entry's settings with its path replaced; any other
    name takes the settings of the model it was trained from (`train.model`): same context, dtype and parallelism.
    """
    device = device or device_for(config)
    if not checkpoints:
        if not config.serve.models:
            raise LimoError("nothing to serve: give a checkpoint, or list model names under serve.models")
        checkpoints = {name: config.models[name].path for name in config.serve.models}
    specs = {}
    for name, path in checkpoints.items():
        base = config.models.get(name) or config.models[config.train.model]
        model = base.model_copy(update={"path": path})
        spec = spec_from_model_config(name, model, config.prompt, device, config.seed)
        _check_local_model(name, spec.model)
        specs[name] = spec
    return specs


def serving_groups(
    config: RunConfig,
    checkpoints: Mapping[str, str],
    device: Device | None = None,
) -> list[dict[str, str]]:
    """Split `checkpoints` into groups whose minimum replicas fit the cluster at once.

    A replica that cannot be scheduled waits forever, so serving more models than fit (three students on a
    2-CPU machine, four 32B models on one 8-GPU node) would hang; callers serve and evaluate group by group.
    """
    specs = engine_specs(config, checkpoints, device)
    cluster = config.cluster
    have = {
        "CPU": float(cluster.num_nodes * cluster.cpus_per_node),
        "GPU": float(cluster.num_nodes * cluster.gpus_per_node),
    }
    replicas = max(1, config.serve.min_replicas)
    groups: list[dict[str, str]] = []
    used = {"CPU": 0.0, "GPU": 0.0}
    for name, spec in specs.items():
        need = {kind: replicas * sum(b.get(kind, 0.0) for b in spec.bundles()) for kind in ("CPU", "GPU")}
        if any(need[k] > have[k] for k in need):
            raise LimoError(
                f"serve: {name} needs {need['CPU']:g} CPUs and {need['GPU']:g} GPUs for {replicas} replica(s); "
                f"the cluster has {have['CPU']:g} and {have['GPU']:g} (cluster: in the config)"
            )
        if not groups or any(used[k] + need[k] > have[k] for k in need):
            groups.append({})
            used = {"CPU": 0.0, "GPU": 0.0}
        groups[-1][name] = checkpoints[name]
        used = {k: used[k] + need[k] for k in used}
    return groups


def _check_local_model(name: str, path: str) -> None:
    looks_local = path.startswith(("/", ".", "~")) or (os.sep in path and Path(path).exists())
    if looks_local and not (Path(path).expanduser() / "config.json").is_file():
        raise LimoError(f"checkpoint {name!r}: {path} is not a model folder (no config.json there)")


def app_args(
    serve_config: ServeConfig,
    specs: Mapping[str, EngineSpec],
    retry_after_s: int | None = None,
    api_key_sha256: str | None = None,
    gpus_per_node: int = 0,
    node_resources: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """`AppArgs` as a plain dict, from the run config's `serve:` section and the engine specs."""
    replica = {name: getattr(serve_config, name) for name in ServeReplicaConfig.model_fields}
    if retry_after_s is not None:
        replica["retry_after_s"] = retry_after_s
    args = AppArgs(
        **replica,
        models=[ModelArgs(name=name, engine=dataclasses.asdict(spec)) for name, spec in specs.items()],
        api_key_sha256=api_key_sha256,
        gpus_per_node=gpus_per_node,
        node_resources=dict(node_resources or {}),
    )
    return args.model_dump(mode="json")


def serve_config(
    config: RunConfig,
    checkpoints: Mapping[str, str] | None = None,
    device: Device | None = None,
    app_name: str = DEFAULT_APP_NAME,
    retry_after_s: int | None = None,
) -> dict[str, Any]:
    """A `serve build`-format config (RayService `serveConfigV2`, or `serve deploy FILE`) for this run.

    The API key is not in it: the ingress reads the variable named by `serve.api_key_env` from its environment
    (on Kubernetes, a Secret mapped to that variable).
    """
    specs = engine_specs(config, checkpoints, device)
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": config.serve.host, "port": config.serve.port},
        "applications": [
            {
                "name": app_name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "runtime_env": dict(config.cluster.runtime_env),
                "args": app_args(
                    config.serve,
                    specs,
                    retry_after_s,
                    gpus_per_node=config.cluster.gpus_per_node,
                    node_resources=config.cluster.node_resources.serve,
                ),
            }
        ],
    }
