"""`RunConfig`, the whole tree of one run, and the sections every part reads: benchmarks, cluster, toy."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from limo_ray.config.ablate import AblateConfig
from limo_ray.config.base import ModelConfig, PromptConfig, StrictModel
from limo_ray.config.stages import CurateConfig, EvalConfig, ServeConfig, TrainConfig


class BenchmarksConfig(StrictModel):
    # Where benchmark files are read from (the registry's paths are relative to it); None = $LIMO_RAY_DATA.
    data_root: str | None = None
    # Extra registry YAML files: a user's own benchmarks, same schema as the built-in registry.
    registry_files: list[str] = Field(default_factory=list)
    # A file per benchmark name that replaces its registry path (your own copy of a set); the entry step also
    # writes the toy world's benchmark file here, so nothing past it sees a `toy:` path.
    paths: dict[str, str] = Field(default_factory=dict)


class NodeResources(StrictModel):
    """Custom Ray resources each kind of work asks for, so it runs only on the nodes that declare them.

    A cluster with node pools (inference nodes, training nodes) declares a resource on each pool's nodes
    (`ray start --resources='{"inference": 1}'`, KubeRay's `rayStartParams.resources`), and the config asks for
    a small amount of it per engine, worker or replica, e.g. `engines: {inference: 0.01}`. Empty: anywhere.
    """

    engines: dict[str, float] = Field(default_factory=dict)  # each curation engine actor (each bundle on GPUs)
    train: dict[str, float] = Field(default_factory=dict)  # each Ray Train worker
    serve: dict[str, float] = Field(default_factory=dict)  # each Serve replica (each bundle on GPUs)

    @field_validator("engines", "train", "serve")
    @classmethod
    def _custom_and_positive(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = sorted(set(value) & {"CPU", "GPU", "memory", "object_store_memory"})
        if builtin:
            raise ValueError(f"{', '.join(builtin)}: set by the stage itself; name custom resources only")
        bad = sorted(k for k, v in value.items() if v <= 0)
        if bad:
            raise ValueError(f"{', '.join(bad)}: amounts must be above 0")
        return value


class ClusterConfig(StrictModel):
    # None: an embedded local Ray (never attach to a stray cluster by accident); `auto`: the cluster this node
    # belongs to (a KubeRay pod, a `ray up` head), an error if there is none; else a Ray address.
    address: str | None = None
    num_nodes: int = Field(default=1, gt=0)
    gpus_per_node: int = Field(default=0, ge=0)
    cpus_per_node: int = Field(default=2, gt=0)
    gpu_type: str | None = None
    gpu_hour_usd: float = Field(default=0.0, ge=0)
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    # How long a stage waits for its placement groups (engines, Serve replicas, the training worker group)
    # before it stops with one line naming what it lacks; an autoscaler adding a GPU node takes minutes.
    placement_timeout_s: float = Field(default=900.0, gt=0)
    node_resources: NodeResources = Field(default_factory=NodeResources)
    # Ray Serve's HTTP ingress on each node. `haproxy`: Serve's HAProxy ingress (a C load balancer that hands
    # each request to a replica answering HTTP itself, the mode Ray documents for high throughput); `proxy`:
    # Serve's Python proxy actor, one extra process hop per request (bench/RESULTS.md, serve_throughput).
    # Serve reads it when it starts, so it applies to a Serve this run starts (a RayService sets it on its pods).
    serve_ingress: Literal["haproxy", "proxy"] = "haproxy"


class ToyConfig(StrictModel):
    size: Literal["full", "test"] = "full"
    seed: int = 0


# ----------------------------------------------------------------------------------------------- the run


class RunConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = 0
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    models: dict[str, ModelConfig]
    benchmarks: BenchmarksConfig = Field(default_factory=BenchmarksConfig)
    curate: CurateConfig
    train: TrainConfig
    serve: ServeConfig = Field(default_factory=ServeConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    toy: ToyConfig = Field(default_factory=ToyConfig)
    ablate: AblateConfig = Field(default_factory=AblateConfig)

    @model_validator(mode="after")
    def _model_names_exist(self) -> RunConfig:
        refs: list[tuple[str, str]] = [
            ("curate.weak.model", self.curate.weak.model),
            ("curate.strong.model", self.curate.strong.model),
            ("train.model", self.train.model),
        ]
        refs += [(f"curate.chains.models[{i}]", m) for i, m in enumerate(self.curate.chains.models)]
        refs += [(f"serve.models[{i}]", m) for i, m in enumerate(self.serve.models)]
        refs += [(f"ablate.backbone.students[{i}]", m) for i, m in enumerate(self.ablate.backbone.students)]
        if self.eval.judge_model is not None:
            refs.append(("eval.judge_model", self.eval.judge_model))
        for where, name in refs:
            if name not in self.models:
                raise ValueError(
                    f"{where} names model {name!r}, which is not under `models:` "
                    f"(known: {', '.join(sorted(self.models))})"
                )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=110)

    def content_hash(self) -> str:
        """A hash of every setting: two runs with the same hash were asked for the same thing."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
