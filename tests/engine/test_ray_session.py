"""A GPU config never waits on a Ray that has no GPUs: on a private local Ray (what a plain `limo run` on a
head node started before `cluster.address: auto`) it stops at once, in one line, and leaves no Ray behind."""

from __future__ import annotations

import os
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


LOGS_SCRIPT = """
import sys, time
from functools import partial
from pathlib import Path
import ray
from limo_ray.config import ClusterConfig
from limo_ray.console import job_console
from limo_ray.engine.ray_session import start_job_ray

@ray.remote(num_cpus=0)
def shout():
    print("WORKER-STDOUT-MARK", flush=True)
    return 1

start = partial(start_job_ray, ClusterConfig(cpus_per_node=1))
with job_console(Path(sys.argv[1]), start) as console:
    ray.get(shout.remote())
    time.sleep(2)  # what Ray's log monitor would stream to the driver has had time to arrive
    console("[curate] dedup: 10 in -> 9 kept, 1 dropped, 0 rejected, 0 tokens, 0.1s")
"""


def test_ray_worker_output_stays_off_the_console_and_lands_in_the_run_folder_logs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", LOGS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Ray dashboard: http://127.0.0.1:")
    assert "(a local Ray started by this command)" in lines[0]
    assert lines[1].startswith("Grafana: cluster/grafana/limo-ray.json (rows: Curation, Training")
    assert lines[2].startswith(f"Logs: {tmp_path / 'logs'}/ (Ray and vLLM output; --verbose streams it here)")
    assert lines[3:] == ["[curate] dedup: 10 in -> 9 kept, 1 dropped, 0 rejected, 0 tokens, 0.1s"]
    assert "WORKER-STDOUT-MARK" not in done.stdout + done.stderr
    sessions = list((tmp_path / "logs" / "ray").iterdir())
    assert len(sessions) == 1 and sessions[0].is_dir() and not sessions[0].is_symlink()  # copied at the end
    assert any("WORKER-STDOUT-MARK" in f.read_text(errors="replace") for f in sessions[0].glob("worker-*.out"))
    assert "Started a local Ray instance" in (tmp_path / "logs" / "driver.log").read_text()
