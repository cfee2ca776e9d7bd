"""SIGKILL the `limo run` driver in each of its stages, re-run the same command each time: the job finishes with
nothing lost, no finished generation drawn again, no completed stage or training step redone, and a clear word
about what was resumed.

One job on the test-size toy world, small enough for the test budget (a 60-problem pool, one chain model,
three epochs of single-sample steps so that training checkpoints at each epoch's end), killed three times:

1. in curation, once the strong filter has stored its first generations;
2. in training, once Ray Train has registered a checkpoint and before the last step;
3. in evaluation, once the second serving group (two students fit the 2-CPU cluster at once, then the third)
   has cached some answers: the re-run serves only that group again;

then re-run to the end, and once more: a finished job only rewrites its summary.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from limo_ray.curate.generations import GenerationStore, stored_attempts
from limo_ray.runfolder import Manifest
from tests.fixtures import eval_samples, registered_train_steps, strong_filter_requests

pytestmark = pytest.mark.integration

POOL_SIZE = 60
EVAL_ITEMS = 100  # the test-size toy benchmark
STUDENTS = 3  # base, curated, random
SETTINGS = [
    "toy.size=test",
    'curate.chains.models=["strong"]',
    "curate.balance.size=16",
    "curate.select.size=12",
    "train.epochs=3",
    "train.packing=false",
    "train.micro_batch_size=1",
    "train.global_batch_size=2",  # 1 per micro-batch x 2 workers: 6 steps per epoch on 12 samples
    "eval.concurrency=8",  # slow enough that the kill lands mid-eval
]
CURATE_STAGES = ("ingest", "dedup", "decontaminate", "weak_filter")
# The steps of `limo run` that record whether they were skipped (limo_ray/run.py: run_all).
SKIPPABLE_STEPS = ("curate", "train", "baseline_curate", "baseline_train")


class Job:
    """`limo run` in its own session (so a SIGKILL takes its embedded Ray too), output to a numbered log."""

    def __init__(self, folder: Path, pool: Path) -> None:
        self.folder, self.run_dir = folder, folder / "run"
        settings = [*SETTINGS, f"curate.pool.sources={json.dumps([str(pool)])}"]
        self.argv = [sys.executable, "-m", "limo_ray.cli", "run", "--config", "tiny", "--run-dir", str(self.run_dir)]
        self.argv += [arg for setting in settings for arg in ("--set", setting)]
        self.attempt = 0

    def start(self) -> tuple[subprocess.Popen[str], Path]:
        self.attempt += 1
        log = self.folder / f"attempt-{self.attempt}.log"
        with log.open("w") as out:  # a file, not a pipe: nobody reads a pipe while the test polls
            process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
        return process, log

    def kill_when(self, ready: Callable[[], bool], what: str, timeout: float = 900) -> tuple[Path, int]:
        """Start the job, SIGKILL it (and everything it started) once `ready()`; (log, kill time in ns)."""
        process, log = self.start()
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"the run ended before {what}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return log, time.time_ns()

    def finish(self, timeout: float = 900) -> str:
        process, log = self.start()
        assert process.wait(timeout=timeout) == 0, log.read_text()[-4000:]
        return log.read_text()


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("manifest.json")}


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    from limo_ray.toy import build_toy_world

    folder = tmp_path_factory.mktemp("killed-run")
    toy_pool = build_toy_world("test").pool
    pool = folder / "pool.jsonl"
    pool.write_text("".join(line + "\n" for line in toy_pool.read_text(encoding="utf-8").splitlines()[:POOL_SIZE]))
    return Job(folder, pool)


def test_sigkill_in_each_stage_of_limo_run_then_rerun_loses_and_redoes_nothing(job: Job, report) -> None:
    run_dir = job.run_dir
    generations = run_dir / "curate" / "strong_filter" / "generations"

    # 1. curation: killed inside the strong filter.
    _, killed_in_curate = job.kill_when(lambda: any(generations.glob("part-*.parquet")), "strong-filter generation")
    assert Manifest.read(run_dir / "curate" / "strong_filter") is None
    finished = {(r["problem_id"], r["attempt_index"]) for r in GenerationStore(generations).rows.values()}
    assert finished
    before_second = _mtimes(run_dir)

    # 2. training: killed after a registered checkpoint, before the last step.
    train_dir = run_dir / "train"
    curate_log, _ = job.kill_when(lambda: bool(registered_train_steps(train_dir)), "training checkpoint")
    registered = max(registered_train_steps(train_dir))
    assert Manifest.read(train_dir) is None, "training finished before the kill: nothing was tested"
    curate_text = curate_log.read_text()
    for stage in CURATE_STAGES:  # finished before the first kill: skipped, not redone
        assert f"[curate] {stage}: complete, skipped" in curate_text
        key = f"curate/{stage}/manifest.json"
        assert (run_dir / key).stat().st_mtime_ns == before_second[key]
    requested_again = strong_filter_requests(run_dir, after_ns=killed_in_curate)
    assert finished & set(requested_again) == set()
    assert len(requested_again) == len(set(requested_again))
    stored = [(r["problem_id"], r["attempt_index"]) for r in stored_attempts(generations)]
    assert len(stored) == len(set(stored))
    curated_manifests = {k: v for k, v in _mtimes(run_dir).items() if k.startswith("curate/")}

    # 3. evaluation: killed once the second serving group has cached some answers.
    def second_group_answering() -> bool:
        return sum(row["checkpoint"] == "student-random" for row in eval_samples(run_dir)) >= 5

    eval_log, _ = job.kill_when(second_group_answering, "cached eval answer of the second serving group")
    answered = {row["key"] for row in eval_samples(run_dir)}
    assert len(answered) < EVAL_ITEMS * STUDENTS, "eval finished before the kill: nothing was tested"
    train_text = eval_log.read_text()
    resumed = re.search(
        r"\[run\] train \(curated\): complete: (\d+) steps, resumed from the checkpoint at step (\d+)", train_text
    )
    assert resumed, train_text[-3000:]
    total_steps, resumed_from = int(resumed.group(1)), int(resumed.group(2))
    assert registered <= resumed_from < total_steps
    train_manifest = Manifest.read(train_dir)
    assert train_manifest is not None and train_manifest.extra["resumed_from_step"] == resumed_from
    metric_steps = [json.loads(line)["step"] for line in (train_dir / "metrics.jsonl").read_text().splitlines()]
    assert metric_steps == list(range(1, total_steps + 1))  # every step logged once: none lost, none redone
    for key, mtime in curated_manifests.items():
        assert (run_dir / key).stat().st_mtime_ns == mtime

    # 4. to the end.
    final_text = job.finish()
    assert "eval: every answer of student-base, student-curated is cached: nothing to serve" in final_text
    counts = [tuple(map(int, c)) for c in re.findall(r"(\d+) samples answered now, (\d+) reused", final_text)]
    assert counts, final_text[-3000:]
    answered_now = sum(now for now, _ in counts)
    assert answered_now == EVAL_ITEMS * STUDENTS - len(answered)  # only what was not cached was asked for
    samples = eval_samples(run_dir)
    keys = [row["key"] for row in samples]
    assert len(keys) == len(set(keys)) == EVAL_ITEMS * STUDENTS  # none lost, none answered twice
    assert {row["checkpoint"] for row in samples} == {"student-base", "student-curated", "student-random"}
    ledger = pq.read_table(run_dir / "curate" / "ledger.parquet").to_pylist()
    ids = [row["problem_id"] for row in ledger]
    assert len(ids) == len(set(ids)) == POOL_SIZE
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["scores"]) == {"student-base", "student-curated", "student-random"}
    assert Path(summary["files"]["checkpoint"], "config.json").is_file()

    # 5. a finished job: every step skipped, nothing served.
    before_last = _mtimes(run_dir)
    again = job.finish(timeout=300)
    steps = json.loads((run_dir / "summary.json").read_text())["steps"]
    # Every step that can be skipped was (eval has no such flag: its answers all come from the cache, below).
    assert set(steps) == {*SKIPPABLE_STEPS, "eval"}, steps
    assert {step: steps[step].get("skipped") for step in SKIPPABLE_STEPS} == dict.fromkeys(SKIPPABLE_STEPS, True)
    assert "is cached: nothing to serve" in again
    assert _mtimes(run_dir) == before_last

    report(
        f"driver killed 3 times: curate ({len(finished)} strong attempts stored, {len(requested_again)} requested "
        f"after, 0 redone), train (checkpoint step {registered}, resumed at {resumed_from} of {total_steps}), "
        f"eval ({len(answered)} answers cached, {answered_now} asked after); finished re-run skipped every step"
    )
