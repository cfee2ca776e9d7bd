"""`limo submit` against a real local Ray head (its own ports and temp dir, token auth, stopped by PID)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    temp = tmp_path_factory.mktemp("ray-head")
    dashboard = _free_port()
    # The job's `python` must be this environment's, as it is on a cluster image.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    command = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        f"--port={_free_port()}",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        "--dashboard-host=127.0.0.1",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp}",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--disable-usage-stats",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{address}/api/version", timeout=2).status_code in (200, 401):
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
        time.sleep(1)
    yield {"address": address, **{k: env[k] for k in ("PATH", "RAY_AUTH_MODE")}}
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)  # `ray start --block` often outlives SIGTERM; a test head need not stop gracefully
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def _submit(head: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": head["PATH"], "RAY_AUTH_MODE": head["RAY_AUTH_MODE"]}
    return subprocess.run(
        # The test-size toy world (earlier tests build it): `tiny` would build the full one on a fresh machine.
        [sys.executable, "-m", "limo_ray.cli", "submit", *args, "--set", "toy.size=test", "--address", head["address"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[1],
    )


def test_submit_curate_follows_the_job_to_success(head: dict[str, str], tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"problem": "What is 1 + 1?", "answer": "2"},
                {"problem": "what is 1+1 ?", "answer": "2"},
                {"problem": "What is 2 + 5?", "answer": "7"},
            ]
        )
    )
    run_dir = tmp_path / "run"
    out = _submit(
        head,
        "curate",
        "--config",
        "tiny",
        "--run-dir",
        str(run_dir),
        "--follow",
        "--pool",
        str(pool),
        "--until",
        "dedup",
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "SUCCEEDED" in out.stdout and "[curate] dedup: 3 in -> 2 kept" in out.stdout
    manifest = json.loads((run_dir / "curate" / "dedup" / "manifest.json").read_text())
    assert (manifest["complete"], manifest["rows_out"]) == (True, 2)


def test_a_failing_job_makes_submit_exit_non_zero(head: dict[str, str], tmp_path: Path) -> None:
    out = _submit(
        head, "curate", "--config", "tiny", "--run-dir", str(tmp_path / "run"), "--follow", "--until", "no_such_stage"
    )
    assert out.returncode == 1
    assert "FAILED" in out.stdout and "no_such_stage" in out.stdout


def test_submit_ablate_runs_the_study_as_a_job(head: dict[str, str], tmp_path: Path) -> None:
    from limo_ray.cli.options import resolve_entry
    from limo_ray.config import load_config
    from tests.ablate.conftest import build_synthetic_run, mark_curation_finished

    sizes = "ablate.size.sizes=[5, 10, 30]"
    run_dir = tmp_path / "run"
    build_synthetic_run(run_dir)
    # As the job resolves its config (the test-size toy world that `_submit` names), so it does not curate again.
    mark_curation_finished(run_dir, resolve_entry(load_config("tiny", ["toy.size=test", sizes])))
    out = _submit(
        head,
        "ablate",
        "size",
        "--config",
        "tiny",
        "--set",
        sizes,
        "--run-dir",
        str(run_dir),
        "--follow",
        "--repeats",
        "2",
        "--until",
        "arms",
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "python jobs/ablate.py size --config tiny" in out.stdout and "SUCCEEDED" in out.stdout
    assert "curation is not finished" not in out.stdout
    index = json.loads((run_dir / "ablate" / "size" / "arms.json").read_text())
    assert [(row["label"], row["samples"]) for row in index] == [
        (f"n{n}-s{seed}", n) for seed in (0, 1) for n in (5, 10, 30)
    ]


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ("sise", "limo: error: unknown study 'sise': the studies are quality, difficulty, size, selection, backbone"),
        ("--until", "limo: error: limo submit ablate STUDY: name the study right after `ablate`"),
    ],
)
def test_submit_ablate_refuses_a_wrong_study_before_submitting(study: str, message: str) -> None:
    # No Ray head: the study is checked before the job API is asked for anything.
    out = subprocess.run(
        [sys.executable, "-m", "limo_ray.cli", "submit", "ablate", study, "arms", "--address", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert out.returncode == 2 and out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr
