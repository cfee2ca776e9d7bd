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
