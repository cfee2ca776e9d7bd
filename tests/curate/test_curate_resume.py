"""SIGKILL `limo curate` in the strong filter, re-run it: nothing finished is drawn again, nothing is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from limo_ray.curate.generations import GenerationStore, stored_attempts

pytestmark = pytest.mark.integration

ARGS = [
    "--config",
    "tiny",
    "--set",
    "toy.size=test",
    "--set",
    "curate.strong.rounds=[2, 2, 2, 2]",
    "--until",
    "strong_filter",
]


def _curate(run_dir: Path, log: Path) -> subprocess.Popen[str]:
    # Output to a file, not a pipe: nobody reads a pipe while the test polls, and a full pipe blocks the run.
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "limo_ray.cli", "curate", *ARGS, "--run-dir", str(run_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def _requested(folder: Path, after_ns: int = 0) -> list[tuple[str, int]]:
    pairs = []
    for log in sorted(folder.glob("*.jsonl")):
        if int(log.stem.rsplit("-", 1)[1]) < after_ns:
            continue
        for line in log.read_text().splitlines():
            row = json.loads(line)
            pairs += [(row["problem_id"], int(i)) for i in row["attempt_indices"]]
    return pairs


def test_sigkill_during_strong_filter_then_rerun_redoes_no_finished_generation(tmp_path: Path, report) -> None:
    run_dir = tmp_path / "run"
    generations = run_dir / "curate" / "strong_filter" / "generations"
    first_log, rerun_log = tmp_path / "first.log", tmp_path / "rerun.log"
    process = _curate(run_dir, first_log)
    deadline = time.monotonic() + 900
    while not list(generations.glob("part-*.parquet")):
        assert process.poll() is None, first_log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the strong filter never wrote a generation"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = time.time_ns()
    assert not (run_dir / "curate" / "strong_filter" / "manifest.json").exists()
    finished = {(r["problem_id"], r["attempt_index"]) for r in GenerationStore(generations).rows.values()}
    assert finished

    rerun = _curate(run_dir, rerun_log)
    assert rerun.wait(timeout=1200) == 0, rerun_log.read_text()[-3000:]

    requested_again = _requested(run_dir / "curate" / "strong_filter" / "requests", after_ns=killed_at)
    redone = finished & set(requested_again)
    assert redone == set()
    assert len(requested_again) == len(set(requested_again))
    stored = [(r["problem_id"], r["attempt_index"]) for r in stored_attempts(generations)]
    assert len(stored) == len(set(stored))
    ledger = pq.read_table(run_dir / "curate" / "ledger.parquet").to_pylist()
    ids = [row["problem_id"] for row in ledger]
    ingested = pq.read_table(run_dir / "curate" / "ingest" / "problems.parquet").num_rows
    assert len(ids) == len(set(ids)) == ingested
    weak_kept = sum(1 for row in ledger if row["weak_filter"] == "kept")
    assert sum(1 for row in ledger if row["strong_filter"] is not None) == weak_kept
    report(
        f"resume: {len(finished)} attempts finished before SIGKILL, {len(requested_again)} requested after, "
        f"0 redone; ledger {len(ids)} problems, no duplicates"
    )
