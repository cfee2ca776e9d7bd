"""Where a replica's GPUs go, and the life of the placement groups that hold them: one rule for the whole job.

Engines (curation's engine pools), Serve's replicas, Ray Train's worker group and `limo plan` (arithmetic and
`--simulate`) all ask this module, so a layout the plan approves is the layout the scheduler is asked for:

- a replica that fits one node (tensor x pipeline parallel <= GPUs per node) is one group under `STRICT_PACK`:
  its tensor-parallel ranks talk over NVLink, never the network;
- a bigger one (pipeline parallelism across nodes, e.g. DeepSeek-R1 at TP 8 x PP 2 on 8-GPU nodes) is a bundle
  set per node under `PACK`, the way `ray.data.llm` places a pipeline-parallel engine: `STRICT_PACK` would ask
  for 16 GPUs on one node and wait forever. Its tensor-parallel group must still fit inside a node.

Every group the project creates is removed when the actor holding it ends (`release`), and waiting for one has a
timeout (`reserve`): a stage that cannot be placed says so in one line, with what it asked for and what the
cluster had free, instead of hanging.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from limo_ray.errors import LimoError

if TYPE_CHECKING:
    from ray.util.placement_group import PlacementGroup

    from limo_ray.config import ClusterConfig
    from limo_ray.engine.spec import EngineSpec

Strategy = Literal["STRICT_PACK", "PACK"]
Bundle = Mapping[str, float]


@dataclass(frozen=True)
class ReplicaPlacement:
    """The placement group one replica asks for: its bundles, the strategy, and the nodes it spans at least."""

    bundles: tuple[dict[str, float], ...]
    strategy: Strategy
    nodes: int

    @property
    def gpus(self) -> int:
        return int(sum(b.get("GPU", 0) for b in self.bundles))


def replica_placement(
    spec: EngineSpec, gpus_per_node: int, node_resources: Mapping[str, float] | None = None
) -> ReplicaPlacement:
    """The group for one replica of `spec` on nodes of `gpus_per_node` GPUs (0: CPU nodes, one bundle); every
    bundle also asks for `node_resources` (`cluster.node_resources`), which keeps it on the nodes declaring them."""
    bundles = tuple({**b, **(node_resources or {})} for b in spec.bundles())
    size = spec.world_size if spec.device == "cuda" else 1
    if gpus_per_node <= 0 or size <= gpus_per_node:
        return ReplicaPlacement(bundles, "STRICT_PACK", 1)
    return ReplicaPlacement(bundles, "PACK", -(-size // gpus_per_node))


def actor_options(spec: EngineSpec, node_resources: Mapping[str, float] | None, grouped: bool) -> dict[str, Any]:
    """Ray options for the actor holding one replica of `spec` (an engine actor, a Serve replica): its CPUs and
    GPUs, and the custom `node_resources` unless a placement group (`grouped`) already holds them in its bundles."""
    options = dict(spec.actor_options())
    if node_resources and not grouped:
        options["resources"] = dict(node_resources)
    return options


def check_layout(spec: EngineSpec, cluster: ClusterConfig) -> None:
    """Refuse an engine the cluster's shape can never hold: more GPUs than it has, or a TP group split by nodes."""
    if spec.device != "cuda":
        return
    total = cluster.num_nodes * cluster.gpus_per_node
    per_node = cluster.gpus_per_node
    shape = f"{cluster.num_nodes} node(s) x {per_node} GPUs"
    if spec.world_size > total:
        raise LimoError(
            f"engine {spec.name!r} ({spec.model}): tensor_parallel_size x pipeline_parallel_size = "
            f"{spec.tensor_parallel_size} x {spec.pipeline_parallel_size} = {spec.world_size} GPUs, but the "
            f"cluster has {shape} = {total}"
        )
    if spec.world_size > per_node and (spec.tensor_parallel_size > per_node or per_node % spec.tensor_parallel_size):
        raise LimoError(
            f"engine {spec.name!r} ({spec.model}): spans nodes ({spec.world_size} GPUs on {per_node}-GPU nodes), "
            f"and its tensor-parallel group of {spec.tensor_parallel_size} does not divide a node: put "
            "tensor_parallel_size <= GPUs per node (dividing it) and span nodes with pipeline_parallel_size"
        )


def engine_replicas(spec: EngineSpec, cluster: ClusterConfig) -> int:
    """How many replicas of `spec` a stage runs at once: as many as fit the cluster's nodes (1 on CPU)."""
    if spec.device != "cuda" or cluster.gpus_per_node == 0:
        return 1
    per_node, size = cluster.gpus_per_node, spec.world_size
    if size <= per_node:
        return cluster.num_nodes * (per_node // size)  # STRICT_PACK: a replica never straddles two nodes
    return max(1, (cluster.num_nodes * per_node) // size)


# ----------------------------------------------------------------------------------------------- live groups


def reserve(
    bundles: Sequence[Bundle], strategy: Strategy, stage: str, timeout_s: float, name: str = ""
) -> PlacementGroup:
    """Create a placement group and wait until it is placed; past `timeout_s`, remove it and raise one line."""
    import ray

    group = ray.util.placement_group([dict(b) for b in bundles], strategy=strategy, name=name)
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        release(group)
        raise LimoError(unplaceable_message(stage, bundles, strategy, timeout_s))
    return group


def release(group: PlacementGroup | None) -> None:
    """Remove a group (its resources go back to the cluster); a group already gone is fine."""
    if group is None:
        return
    import ray

    with contextlib.suppress(Exception):  # removed already, or Ray shut down under us
        ray.util.remove_placement_group(group)


def unplaceable_message(stage: str, bundles: Sequence[Bundle], strategy: str, timeout_s: float) -> str:
    return (
        f"{stage}: could not place {describe_bundles(bundles)} ({strategy}) within {timeout_s:g} s; "
        f"{lacking(bundles, strategy)}; the cluster has free: {free_resources()}"
    )


def describe_bundles(bundles: Sequence[Bundle]) -> str:
    """`16 x {GPU: 1}` style, runs of equal bundles collapsed."""
    runs: list[tuple[str, int]] = []
    for bundle in bundles:
        text = "{" + ", ".join(f"{k}: {v:g}" for k, v in bundle.items()) + "}"
        if runs and runs[-1][0] == text:
            runs[-1] = (text, runs[-1][1] + 1)
        else:
            runs.append((text, 1))
    return " + ".join(f"{n} x {text}" for text, n in runs)


def lacking(bundles: Sequence[Bundle], strategy: str) -> str:
    """What the live cluster lacks for these bundles: the resource and how much (for the one-line error)."""
    nodes = free_per_node()
    need: dict[str, float] = {}
    for bundle in bundles:
        for key, value in bundle.items():
            need[key] = need.get(key, 0.0) + float(value)
    for key, amount in need.items():
        free = sum(node.get(key, 0.0) for node in nodes.values())
        if free < amount:
            return f"it needs {amount:g} {key}, {free:g} free in the cluster"
    if strategy == "STRICT_PACK":
        for key, amount in need.items():
            best = max((node.get(key, 0.0) for node in nodes.values()), default=0.0)
            if best < amount:
                return f"it needs {amount:g} {key} on one node (STRICT_PACK), at most {best:g} free on any node"
    return "no node set can hold the bundles together"


def free_per_node() -> dict[str, dict[str, float]]:
    """Free CPU/GPU per live node id."""
    from ray._private.state import available_resources_per_node

    return {
        node_id: {k: float(v) for k, v in resources.items() if k in ("CPU", "GPU")}
        for node_id, resources in available_resources_per_node().items()
    }


def cluster_gpus() -> tuple[float, float | None]:
    """(GPUs in the live cluster, the most an autoscaler could bring, None without one)."""
    import ray
    from ray._private.state import state

    live = float(ray.cluster_resources().get("GPU", 0.0))
    try:
        maximum = state.get_max_resources_from_cluster_config()
    except Exception:  # no autoscaler config published (a fixed or local cluster)
        maximum = None
    return live, (float(maximum.get("GPU", 0)) if maximum else None)


def free_resources() -> str:
    nodes = free_per_node()
    parts = []
    for node_id, resources in sorted(nodes.items()):
        if not any(resources.values()):
            continue  # a node with nothing free (the head, which runs no tasks)
        parts.append(f"{node_id[:8]} {{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(resources.items())) + "}")
    return "; ".join(parts) or "nothing (no live node)"


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll `predicate()` until true or `timeout_s` passes; True if it became true."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
