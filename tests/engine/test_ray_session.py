"""A GPU config never waits on a Ray that has no GPUs: on a private local Ray (what a plain `limo run` on a
head node started before `cluster.address: auto`) it stops at once, in one line, and leaves no Ray behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import ray, sys
from limo_ray.config import load_config
from limo_ray.engine import init_ray
from limo_ray.errors import LimoError
config = load_config("limo-32b", ["cluster.address=null", "cluster.cpus_per_node=1"])
try:
    init_ray(config.cluster)
except LimoError as exc:
    print("error:", exc)
print("ray still up:", ray.is_initialized())
"""


def test_a_gpu_config_on_a_local_ray_without_gpus_fails_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2].startswith("error: the config asks for GPUs (cluster: 2 x 8), but the local Ray this command")
    assert "has 0 GPUs and no autoscaler" in lines[-2] and "cluster.address: auto" in lines[-2]
    assert lines[-1] == "ray still up: False"
