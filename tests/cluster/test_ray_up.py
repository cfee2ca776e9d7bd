"""The `ray up` cluster-launcher configs pass Ray's own checks (`prepare_config` fills the provider's defaults,
`validate_config` applies ray-schema.json) and describe the cluster the limo-32b preset plans for."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from limo_ray.config import load_config

REPO = Path(__file__).resolve().parents[2]
SHARED_SCHEMA = REPO.parent / "shared" / "data" / "ray-autoscaler-schema" / "ray-schema.json"
CONFIGS = sorted((REPO / "cluster" / "ray-up").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _prepared(config: dict[str, Any]) -> dict[str, Any]:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_there_is_a_config_per_cloud() -> None:
    assert {p.stem for p in CONFIGS} >= {"aws", "gcp"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_passes_rays_own_validation(path: Path) -> None:
    prepared = _prepared(_load(path))
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_describes_the_presets_cluster(path: Path) -> None:
    config = _load(path)
    preset = load_config("limo-32b")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU"), "the head runs no tasks"
    gpu_types = {name: t for name, t in types.items() if t["resources"].get("GPU")}
    assert gpu_types
    for name, node in gpu_types.items():
        assert node["resources"]["GPU"] == preset.cluster.gpus_per_node, name
        assert node.get("min_workers", 0) == 0, f"{name}: no idle GPU nodes"
        assert node["max_workers"] >= preset.cluster.num_nodes, name
    assert (
        sum(t.get("max_workers", 0) for n, t in types.items() if n != config["head_node_type"]) <= config["max_workers"]
    )
    setup = " && ".join(config["setup_commands"])
    assert "pip install" in setup and "-e '.[gpu]'" in setup, "installs the project's gpu profile"
    assert "." in config["file_mounts"].values(), "the working dir travels with file_mounts"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start, "dashboard and job API only through `ray dashboard`"
    assert "--metrics-export-port=8080" in head_start
    assert "HF_TOKEN" not in path.read_text().replace("# ", ""), "no secrets in a launcher config"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_a_misspelt_key_is_rejected(path: Path) -> None:
    config = _load(path)
    node = next(t for t in config["available_node_types"].values() if "min_workers" in t)
    node["min_worker"] = node.pop("min_workers")
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        _prepared(config)


def test_rays_installed_schema_is_the_one_in_shared_data() -> None:
    """validate_config reads the schema inside the installed Ray; it must be the 2.60 one we documented."""
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"{SHARED_SCHEMA} not found (shared data absent)")
    import ray.autoscaler

    installed = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    assert json.loads(installed.read_text()) == json.loads(SHARED_SCHEMA.read_text())


# ----------------------------------------------------------------------------------------------- network, placement


def _gpu_node_types(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in config["available_node_types"].items() if t["resources"].get("GPU")}


def aws_network_problems(config: dict[str, Any]) -> list[str]:
    """One AZ and one subnet for every node, a cluster placement group and all 32 EFA devices on each p5."""
    from ray.autoscaler._private.aws.config import _configure_from_network_interfaces

    problems = []
    zones = [z.strip() for z in str(config["provider"].get("availability_zone", "")).split(",") if z.strip()]
    if len(zones) != 1:
        problems.append(f"provider.availability_zone must name one AZ, got {zones}")
    try:  # Ray's own bootstrap step for NetworkInterfaces: every interface needs a subnet and a security group.
        prepared = _configure_from_network_interfaces(copy.deepcopy(config))
    except ValueError as exc:
        return [*problems, f"Ray rejects the NetworkInterfaces: {exc}"]
    subnets = {s for t in prepared["available_node_types"].values() for s in t["node_config"].get("SubnetIds", [])}
    if len(subnets) != 1:
        problems.append(f"every node type in one subnet (one AZ), got {sorted(subnets)}")
    for name, node in _gpu_node_types(config).items():
        node_config = node["node_config"]
        if not node_config.get("Placement", {}).get("GroupName"):
            problems.append(f"{name}: no cluster placement group")
        efa = [i for i in node_config.get("NetworkInterfaces", []) if i.get("InterfaceType") in ("efa", "efa-only")]
        if node_config["InstanceType"] == "p5.48xlarge" and len(efa) != 32:
            problems.append(f"{name}: p5.48xlarge has 32 EFA devices, {len(efa)} requested")
        cards = [(i.get("NetworkCardIndex"), i.get("DeviceIndex")) for i in node_config.get("NetworkInterfaces", [])]
        if len(set(cards)) != len(cards):
            problems.append(f"{name}: two interfaces on the same network card and device index")
        options = " ".join(node.get("docker", {}).get("worker_run_options", []))
        for needed in ("/dev/infiniband", "FI_PROVIDER=efa"):
            if needed not in options:
                problems.append(f"{name}: docker worker_run_options lack {needed}")
    return problems


def gcp_network_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    if "," in str(config["provider"].get("availability_zone", "")):
        problems.append("provider.availability_zone must be one zone")
    for name, node in _gpu_node_types(config).items():
        policies = node["node_config"].get("resourcePolicies", [])
        if not any("/resourcePolicies/" in p for p in policies):
            problems.append(f"{name}: no compact placement policy (resourcePolicies)")
    return problems


NETWORK_CHECKS = {"aws": aws_network_problems, "gcp": gcp_network_problems}


@pytest.mark.parametrize("cloud", sorted(NETWORK_CHECKS))
def test_gpu_nodes_have_the_fabric_and_one_zone(cloud: str) -> None:
    assert NETWORK_CHECKS[cloud](_load(REPO / "cluster" / "ray-up" / f"{cloud}.yaml")) == []


@pytest.mark.parametrize(
    ("cloud", "mutate", "expected"),
    [
        ("aws", lambda c: c["provider"].update(availability_zone="us-east-1a,us-east-1b"), "one AZ"),
        ("aws", lambda c: c["available_node_types"]["gpu-8x-h100"]["node_config"].pop("Placement"), "placement"),
        ("aws", lambda c: c["available_node_types"]["gpu-8x-h100"]["node_config"]["NetworkInterfaces"].pop(), "32 EFA"),
        (
            "aws",
            lambda c: c["available_node_types"]["gpu-8x-h100"]["node_config"]["NetworkInterfaces"][3].pop("Groups"),
            "security group",
        ),
        ("aws", lambda c: c["available_node_types"]["gpu-8x-h100"].pop("docker"), "/dev/infiniband"),
        ("gcp", lambda c: c["available_node_types"]["gpu-8x-h100"]["node_config"].pop("resourcePolicies"), "compact"),
    ],
)
def test_network_checks_can_fail(cloud: str, mutate, expected: str) -> None:
    config = _load(REPO / "cluster" / "ray-up" / f"{cloud}.yaml")
    mutate(config)
    problems = NETWORK_CHECKS[cloud](config)
    assert any(expected in p for p in problems), problems
