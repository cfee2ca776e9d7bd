"""`limo eval --checkpoint` composes serve + evaluate: starts a Serve app, evaluates, stops it, writes the report."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
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

    # The same command again: every answer is cached, so nothing is served and the report is the same.
    again = subprocess.run([sys.executable, "-m", "limo_ray.cli", *args], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "every answer of tiny is cached: nothing to serve" in again.stdout
    assert json.loads((run_dir / "eval" / "report.json").read_text())["checkpoints"] == report["checkpoints"]
    assert len((run_dir / "eval" / "samples.jsonl").read_text().splitlines()) == len(samples)

    # New weights under the same name (a retrained checkpoint) are not the cached answers' model.
    import os

    from limo_ray.config import load_config
    from limo_ray.evaluate import unanswered
    from limo_ray.run import checkpoint_identity

    config = load_config("tiny", [f"benchmarks.data_root={shared_data}", "eval.max_tokens=16"])
    ids = {"tiny": checkpoint_identity("tiny", str(model))}
    assert unanswered(config, run_dir, ids, ["aime24"]) == 0
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000_000))
    assert unanswered(config, run_dir, {"tiny": checkpoint_identity("tiny", str(model))}, ["aime24"]) == 30 * 4
