"""The training worker group's resources: one `ScalingConfig` for the real fit and for `limo plan --simulate`.

Ray Train places its workers as one placement group of `num_workers` equal bundles under `PACK` (a worker per
GPU, `cpus_per_worker` CPUs beside each, and the custom resources `cluster.node_resources.train` names, which
keep the workers on the nodes declaring them); `worker_bundles` states that group so the planner can ask the
scheduler for exactly what the fit will ask for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from limo_ray.config import TrainConfig

# Ray Train's own default, named here so the pre-flight reservation asks for the same layout.
PLACEMENT_STRATEGY = "PACK"


def worker_resources(train: TrainConfig, node_resources: Mapping[str, float] | None = None) -> dict[str, float]:
    """One worker's resources, as `ScalingConfig.resources_per_worker` takes them (its GPU is `use_gpu`'s)."""
    return {"CPU": float(train.cpus_per_worker), **(node_resources or {})}


def worker_bundles(train: TrainConfig, node_resources: Mapping[str, float] | None = None) -> list[dict[str, float]]:
    bundle = worker_resources(train, node_resources)
    if train.use_gpu:
        bundle["GPU"] = 1.0
    return [dict(bundle) for _ in range(train.num_workers)]


def scaling_config(train: TrainConfig, node_resources: Mapping[str, float] | None = None) -> Any:
    from ray.train import ScalingConfig

    return ScalingConfig(
        num_workers=train.num_workers,
        use_gpu=train.use_gpu,
        resources_per_worker=worker_resources(train, node_resources),  # + 1 GPU each when use_gpu
        placement_strategy=PLACEMENT_STRATEGY,
    )


def check_worker_group_placeable(
    train: TrainConfig, timeout_s: float, node_resources: Mapping[str, float] | None = None
) -> None:
    """Ray Train waits for its worker group without end (it retries the start): ask the scheduler first for the
    same bundles and strategy, with a timeout, so a group that cannot be placed is one line naming what it lacks."""
    from limo_ray.engine.placement import release, reserve

    bundles = worker_bundles(train, node_resources)
    release(reserve(bundles, PLACEMENT_STRATEGY, "train (Ray Train worker group)", timeout_s))
