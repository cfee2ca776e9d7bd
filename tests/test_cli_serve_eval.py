"""`limo eval --checkpoint` composes serve + evaluate: starts a Serve app, evaluates, stops it, writes the report.
`limo serve` as a user runs it: the dashboard and the logs named, access lines in Ray's files, Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures import build_tiny_checkpoint

pytestmark = pytest.mark.integration


def test_eval_checkpoint_serves_evaluates_and_reports(tmp_path: Path, shared_data: Path) -> None:
    model = build_tiny_checkpoint(tmp_path / "tiny")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run_dir = tmp_path / "run"
    args = [
        "eval",
        "--config",
        "tiny",
        "--checkpoint",
        f"tiny={model}",
        "--benchmark",
        "aime24",
        "--run-dir",
        str(run_dir),
        "--set",
        f"benchmarks.data_root={shared_data}",
        "--set",
        "eval.max_tokens=16",
        "--set",
        f"serve.port={port}",
    ]
    out = subprocess.run([sys.executable, "-m", "limo_ray.cli", *args], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    score = report["checkpoints"]["tiny"]["aime24"]
    assert score["n"] == 30 and len(score["ci95"]) == 2
    assert report["paper"]["aime24"]["LIMO"] == 57.1
    samples = (run_dir / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 30 * 4  # the paper's decoding for AIME24: 4 samples at T=0.6
    assert "tiny: aime24" in out.stdout and (run_dir / "eval" / "report.md").is_file()
    # The console is the header and eval's own lines; Ray's, Serve's and vLLM's output is in the run's logs.
    ours = ("Ray dashboard: ", "Grafana: ", "Logs: ", "eval: ", "tiny: ", "report: ")
    assert [line for line in out.stdout.splitlines() if not line.startswith(ours)] == [] and out.stderr == ""

    # The same command again: every answer is cached, so nothing is served and the report is the same.
    again = subprocess.run([sys.executable, "-m", "limo_ray.cli", *args], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "every answer of tiny is cached: nothing to serve" in again.stdout
    assert json.loads((run_dir / "eval" / "report.json").read_text())["checkpoints"] == report["checkpoints"]
    assert len((run_dir / "eval" / "samples.jsonl").read_text().splitlines()) == len(samples)

    # New weights under the same name (a retrained checkpoint) are not the cached answers' model.
    from limo_ray.config import load_config
    from limo_ray.evaluate import unanswered
    from limo_ray.run import checkpoint_identity

    config = load_config("tiny", [f"benchmarks.data_root={shared_data}", "eval.max_tokens=16"])
    ids = {"tiny": checkpoint_identity("tiny", str(model))}
    assert unanswered(config, run_dir, ids, ["aime24"]) == 0
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))
    assert unanswered(config, run_dir, {"tiny": checkpoint_identity("tiny", str(model))}, ["aime24"]) == 30 * 4


def test_limo_serve_names_the_dashboard_and_logs_keeps_access_lines_off_the_console_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    import openai

    model = build_tiny_checkpoint(tmp_path / "tiny")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    args = ["serve", "--config", "tiny", "--checkpoint", f"tiny={model}", "--set", f"serve.port={port}"]
    args += ["--set", "serve.api_key_env=null"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(out_path, "w") as out, open(err_path, "w") as err:
        server = subprocess.Popen([sys.executable, "-m", "limo_ray.cli", *args], stdout=out, stderr=err, env=env)
    try:
        deadline = time.monotonic() + 600
        while "serving tiny at" not in out_path.read_text() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        console = out_path.read_text()
        assert "serving tiny at" in console, console[-3000:] + err_path.read_text()[-3000:]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        for _ in range(3):
            reply = client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "1+1?"}], max_tokens=4
            )
            assert reply.choices[0].message.content is not None
        time.sleep(3)  # what Ray's log monitor would stream to the driver has had time to arrive
        lines = out_path.read_text().splitlines()
        assert lines[0].startswith("Ray dashboard: http://127.0.0.1:") and "started by this command" in lines[0]
        assert lines[1].startswith("Grafana: ")
        assert lines[2].startswith("Logs: ") and lines[2].endswith("--verbose streams them here)")
        logs = Path(lines[2].removeprefix("Logs: ").split("/ (")[0])
        assert lines[3].startswith(f"serving tiny at http://127.0.0.1:{port}/v1 (ready in ")
        console = out_path.read_text() + err_path.read_text()
        assert "POST /v1/chat/completions" not in console
        access = [f for f in (logs / "serve").glob("*.log") if "POST /v1/chat/completions 200" in f.read_text()]
        assert access, f"no access line in {logs / 'serve'}"

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=120) == 0, err_path.read_text()[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
