"""The placement rule (CPU only, no Ray): one group per replica, STRICT_PACK only when it fits a node, replica
counts that the scheduler can really place, and layouts no cluster of that shape could ever hold refused."""

from __future__ import annotations

import pytest

from limo_ray.config import ClusterConfig, load_config
from limo_ray.engine.placement import check_layout, describe_bundles, engine_replicas, replica_placement
from limo_ray.engine.spec import EngineSpec, engine_spec
from limo_ray.errors import LimoError


def gpu_spec(tp: int, pp: int = 1) -> EngineSpec:
    return EngineSpec(
        name="m", model="org/m", max_model_len=4096, device="cuda", tensor_parallel_size=tp, pipeline_parallel_size=pp
    )


def test_a_replica_that_fits_one_node_is_strictly_packed() -> None:
    placement = replica_placement(gpu_spec(4), gpus_per_node=8)
    assert (placement.strategy, placement.nodes, placement.gpus) == ("STRICT_PACK", 1, 4)
    assert placement.bundles == ({"GPU": 1.0, "CPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0}, {"GPU": 1.0})


def test_a_replica_bigger_than_a_node_spans_nodes_with_pack() -> None:
    """DeepSeek-R1 at TP 8 x PP 2 on 8-GPU nodes: 16 bundles under STRICT_PACK could never be placed."""
    r1 = engine_spec(load_config("limo-32b"), "r1")
    placement = replica_placement(r1, gpus_per_node=8)
    assert (placement.strategy, placement.nodes, placement.gpus) == ("PACK", 2, 16)


def test_cpu_engines_take_one_cpu_bundle() -> None:
    spec = EngineSpec(name="t", model="/m", max_model_len=512, device="cpu")
    placement = replica_placement(spec, gpus_per_node=0)
    assert (placement.bundles, placement.strategy) == (({"CPU": 1.0},), "STRICT_PACK")


def test_node_resources_ride_on_every_bundle_of_a_replica() -> None:
    spec = EngineSpec(name="r1", model="org/r1", max_model_len=4096, device="cuda", tensor_parallel_size=4)
    placement = replica_placement(spec, gpus_per_node=8, node_resources={"inference": 0.01})
    assert placement.bundles == ({"GPU": 1.0, "CPU": 1.0, "inference": 0.01},) + ({"GPU": 1.0, "inference": 0.01},) * 3
    assert replica_placement(spec, gpus_per_node=8).bundles[1] == {"GPU": 1.0}  # none asked: none added


@pytest.mark.parametrize(
    ("tp", "pp", "nodes", "per_node", "replicas"),
    [
        (1, 1, 2, 8, 16),
        (4, 1, 2, 8, 4),
        (3, 1, 2, 8, 4),  # two per node: 16 // 3 = 5 would leave the fifth waiting for a node forever
        (8, 2, 2, 8, 1),
        (8, 2, 4, 8, 2),
    ],
)
def test_replicas_are_what_the_nodes_can_hold(tp: int, pp: int, nodes: int, per_node: int, replicas: int) -> None:
    cluster = ClusterConfig(num_nodes=nodes, gpus_per_node=per_node)
    assert engine_replicas(gpu_spec(tp, pp), cluster) == replicas


def test_layouts_no_cluster_of_that_shape_can_hold_are_refused() -> None:
    with pytest.raises(LimoError, match=r"8 x 2 = 16 GPUs, but the cluster has 1 node\(s\) x 8 GPUs = 8"):
        check_layout(gpu_spec(8, 2), ClusterConfig(num_nodes=1, gpus_per_node=8))
    with pytest.raises(LimoError, match=r"tensor-parallel group of 16 does not divide a node"):
        check_layout(gpu_spec(16), ClusterConfig(num_nodes=2, gpus_per_node=8))
    with pytest.raises(LimoError, match=r"tensor-parallel group of 3"):
        check_layout(gpu_spec(3, 4), ClusterConfig(num_nodes=2, gpus_per_node=8))
    check_layout(gpu_spec(8, 2), ClusterConfig(num_nodes=2, gpus_per_node=8))  # R1's layout is fine


def test_bundles_are_described_in_runs() -> None:
    assert describe_bundles([{"GPU": 1, "CPU": 1}] + [{"GPU": 1}] * 15) == "1 x {GPU: 1, CPU: 1} + 15 x {GPU: 1}"
