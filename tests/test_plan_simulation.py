"""`limo plan --simulate` on Ray's multi-node test cluster (`ray.cluster_utils.Cluster`: a head with no CPUs plus
worker nodes declaring logical GPUs on this GPU-less machine), with the real Ray scheduler placing every stage.

What cannot run without CUDA is replaced by probes that record the node id and GPU ids Ray gave them: the
vLLM engine body (`plan_simulation.EngineProbe`, which starts one 1-GPU worker per bundle as vLLM's Ray executor
does) and the NCCL training body (a probe train function, no process group). Everything else is the project's
own code: `EngineCache` / `EnginePool`, `engine.placement`, Ray Train's `DataParallelTrainer` with the
training's `ScalingConfig`, and Serve deployments with `serve.app`'s options.

Each simulation runs in its own process (it starts and stops its own cluster), one at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
LIMO = [sys.executable, "-m", "limo_ray.cli"]

SIMULATE = """
import dataclasses, json, sys
from limo_ray.config import load_config
from limo_ray.plan_simulation import simulate_job
if sys.argv[2] == "no-release":
    import limo_ray.engine.pool
    limo_ray.engine.pool.release = lambda group: None  # the defect: groups outlive their actors
report = simulate_job(load_config("limo-32b", sys.argv[3:]), timeout_s=float(sys.argv[1]), log=lambda line: None)
print(json.dumps(dataclasses.asdict(report)))
"""


def simulate(timeout_s: float, mode: str = "as-built", *overrides: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SIMULATE, str(timeout_s), mode, *overrides],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def paper_on_two_nodes() -> dict:
    return simulate(120.0)


def stages(report: dict) -> dict[str, dict]:
    return {s["name"]: s for s in report["stages"]}


def test_every_stage_of_the_paper_preset_is_placed_on_two_8_gpu_nodes(paper_on_two_nodes: dict) -> None:
    report = paper_on_two_nodes
    assert report["error"] is None and report["failed_stage"] is None
    by_name = stages(report)
    assert list(by_name) == [
        "curate.weak_filter",
        "curate.strong_filter",
        "curate.chains[r1]",
        "curate.chains[strong]",
        "curate.chains[qwq]",
        "train",
        "eval.serve[min 1]",
        "eval.serve[max 4]",
    ]
    # (placement groups, nodes, distinct GPUs the probes were given) per stage.
    expected = {
        "curate.weak_filter": (16, 2, 16),  # 16 one-GPU engines
        "curate.strong_filter": (4, 2, 16),  # 4 TP-4 engines, two per node
        "curate.chains[r1]": (1, 2, 16),  # one TP 8 x PP 2 engine across both nodes
        "curate.chains[strong]": (4, 2, 16),
        "curate.chains[qwq]": (4, 2, 16),
        "train": (1, 2, 16),  # 16 Ray Train workers, one GPU each
        "eval.serve[min 1]": (1, 1, 4),
        "eval.serve[max 4]": (4, 2, 16),
    }
    assert {name: (s["groups"], s["nodes"], s["gpus"]) for name, s in by_name.items()} == expected
    for name, stage in by_name.items():
        assert stage["peak_gpus"] == stage["gpus"], name  # nothing else held while the stage ran
        assert stage["held_after"] == 0, f"{name} still holds GPUs after its release"


def test_each_tensor_parallel_group_sits_on_one_node_and_r1_spans_two(paper_on_two_nodes: dict) -> None:
    by_name = stages(paper_on_two_nodes)
    assert len(by_name["curate.chains[r1]"]["node_ids"]) == 2
    # Two TP-4 strong engines per node: each of the 2 nodes gives all its 8 GPUs.
    assert len(set(by_name["curate.strong_filter"]["node_ids"])) == 2


def test_placement_groups_left_behind_make_the_next_stage_unplaceable() -> None:
    """Without the release, the weak filter's 16 one-GPU groups outlive its engines: the strong filter waits
    for GPUs that never come back, and the simulation says so instead of hanging."""
    report = simulate(10.0, "no-release")
    assert report["failed_stage"] == "curate.strong_filter"
    assert "could not place" in report["error"] and "it needs 4 GPU, 0 free" in report["error"]
    assert stages(report)["curate.weak_filter"]["held_after"] == 16


def test_one_node_cannot_hold_the_r1_engine_and_the_command_says_so() -> None:
    args = ["plan", "--config", "limo-32b", "--simulate", "--set", "cluster.num_nodes=1", "--placement-timeout", "10"]
    done = subprocess.run(
        [*LIMO, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("limo: error: plan --simulate: curate.chains[r1] cannot be placed")
    assert "engine 'r1'" in last and "it needs 16 GPU, 8 free" in last
    assert "curate.strong_filter" in done.stdout  # the stages before it were placed, and shown
