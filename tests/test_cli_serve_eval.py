"""`limo eval --checkpoint` composes serve + evaluate: starts a Serve app, evaluates, stops it, writes the report."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve.tiny_checkpoint import build_tiny_checkpoint

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
