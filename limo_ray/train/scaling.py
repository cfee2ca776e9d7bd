"""The training worker group's resources: one `ScalingConfig` for the real fit and for `limo plan --simulate`.

Ray Train places its workers as one placement group of `num_workers` equal bundles under `PACK` (a worker per
GPU, `cpus_per_worker` CPUs beside each); `worker_bundles` states that group so the planner can ask the
scheduler for exactly what the fit will ask for.
"""

from __future__ import annotations

from typing import Any

from limo_ray.config import TrainConfig

# Ray Train's own default, named here so the pre-flight reservation asks for the same layout.
PLACEMENT_STRATEGY = "PACK"


def worker_bundles(train: TrainConfig) -> list[dict[str, float]]:
    bundle = {"CPU": float(train.cpus_per_worker)}
    if train.use_gpu:
        bundle["GPU"] = 1.0
    return [dict(bundle) for _ in range(train.num_workers)]


def scaling_config(train: TrainConfig) -> Any:
    from ray.train import ScalingConfig

    return ScalingConfig(
        num_workers=train.num_workers,
        use_gpu=train.use_gpu,
        resources_per_worker={"CPU": train.cpus_per_worker},  # + 1 GPU each when use_gpu
        placement_strategy=PLACEMENT_STRATEGY,
    )


def check_worker_group_placeable(train: TrainConfig, timeout_s: float) -> None:
    """Ray Train waits for its worker group without end (it retries the start): ask the scheduler first for the
    same bundles and strategy, with a timeout, so a group that cannot be placed is one line naming what it lacks."""
    from limo_ray.engine.placement import release, reserve

    release(reserve(worker_bundles(train), PLACEMENT_STRATEGY, "train (Ray Train worker group)", timeout_s))
