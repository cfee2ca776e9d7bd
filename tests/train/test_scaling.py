"""The training worker group's resources: what Ray Train is asked for, and what the pre-flight check reserves."""

from __future__ import annotations

import pytest

from limo_ray.config import load_config
from limo_ray.errors import LimoError
from limo_ray.train.scaling import PLACEMENT_STRATEGY, scaling_config, worker_bundles


def test_node_resources_go_on_every_worker_and_into_the_pre_flight_bundles() -> None:
    config = load_config("limo-32b", ['cluster.node_resources.train={"training": 0.01}'])
    train, wanted = config.train, config.cluster.node_resources.train
    scaling = scaling_config(train, wanted)
    assert scaling.resources_per_worker == {"CPU": float(train.cpus_per_worker), "training": 0.01}
    assert scaling.use_gpu and scaling.placement_strategy == PLACEMENT_STRATEGY
    bundles = worker_bundles(train, wanted)
    assert len(bundles) == train.num_workers == 16
    assert all(b == {"CPU": float(train.cpus_per_worker), "training": 0.01, "GPU": 1.0} for b in bundles)
    assert worker_bundles(train) == [{"CPU": float(train.cpus_per_worker), "GPU": 1.0}] * 16  # none asked


def test_node_resources_name_custom_resources_with_positive_amounts() -> None:
    for bad, reason in (('{"GPU": 1}', "name custom resources only"), ('{"training": 0}', "must be above 0")):
        with pytest.raises(LimoError, match=reason):
            load_config("tiny", [f"cluster.node_resources.train={bad}"])
