"""`limo status RUN_DIR` on run folders built from files: a finished run, a run killed mid-curation, a run in
the middle of training (its lock held); read from files only, never Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from limo_ray.cli import main
from limo_ray.config import load_config
from limo_ray.curate.generations import GenerationStore
from limo_ray.curate.pipeline import STAGE_NAMES, random_control_stages
from limo_ray.curate.sampling import log_requests
from limo_ray.runfolder import Manifest, run_lock, write_resolved_config
from limo_ray.status import format_status, read_status
from limo_ray.train.metrics import METRICS_FILE, MetricsLog

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = ("student-base", "student-curated", "student-random")
PER_EPOCH = 3
TOTAL = PER_EPOCH * load_config("tiny").train.epochs


def finish_stage(curate_dir: Path, name: str, rows_in: int, rows_out: int) -> None:
    Manifest(
        stage=name,
        inputs=[],
        rows_in=rows_in,
        rows_out=rows_out,
        rows_rejected=0,
        config_hash="k",
        seconds=1.25,
        complete=True,
        extra={"dropped": rows_in - rows_out, "tokens": 0},
    ).write(curate_dir / name)


def curate(curate_dir: Path, names: list[str], rows: int = 400) -> None:
    for i, name in enumerate(names):
        finish_stage(curate_dir, name, rows - 20 * i, rows - 20 * (i + 1))


def log_steps(train_dir: Path, steps: int) -> None:
    log = MetricsLog(train_dir / METRICS_FILE)
    for step in range(1, steps + 1):
        log.append(
            {"step": step, "epoch": round(step / PER_EPOCH, 4), "loss": 1.0 / step, "lr": 5e-6, "tokens_per_s": 1234.5}
        )


def finish_training(train_dir: Path, steps: int = TOTAL) -> None:
    log_steps(train_dir, steps)
    extra = {"steps": steps, "final_loss": 1.0 / steps, "steps_per_epoch": PER_EPOCH}
    Manifest("train", [], 200, 200, 0, "k", 90.0, True, extra=extra).write(train_dir)


def answer(eval_dir: Path, checkpoint: str, count: int) -> None:
    eval_dir.mkdir(parents=True, exist_ok=True)
    with (eval_dir / "samples.jsonl").open("a") as handle:
        for i in range(count):
            row = {"key": f"{checkpoint}-{i}", "checkpoint": checkpoint, "benchmark": "toy", "correct": i % 2 == 0}
            handle.write(json.dumps(row) + "\n")


def kill_holding_the_lock(run_dir: Path) -> None:
    """A `limo` process that took the run folder's lock and was SIGKILLed."""
    script = (
        "import os, signal, sys\nfrom limo_ray.runfolder import run_lock\n"
        "run_lock(sys.argv[1]).__enter__()\nos.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(run_dir)], cwd=REPO, timeout=120)
    assert done.returncode == -9


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "demo"
    write_resolved_config(load_config("tiny"), folder)
    return folder


def control_stages() -> list[str]:
    return [stage.name for stage in random_control_stages(load_config("tiny"), 1)]


def status_lines(run_dir: Path) -> list[str]:
    return format_status(read_status(run_dir)).splitlines()


def step_line(lines: list[str], step: str) -> str:
    return next(line for line in lines if line.split()[:1] == [step])


def test_status_of_a_finished_run(run_dir: Path) -> None:
    curate(run_dir / "curate", list(STAGE_NAMES))
    finish_training(run_dir / "train")
    curate(run_dir / "baseline" / "curate", control_stages())
    finish_training(run_dir / "baseline" / "train")
    for name in CHECKPOINTS:
        answer(run_dir / "eval", name, 10)
    (run_dir / "eval" / "report.json").write_text("{}")
    (run_dir / "summary.md").write_text("# limo run: tiny\n")
    kill_holding_the_lock(run_dir)

    lines = status_lines(run_dir)
    assert lines[0].startswith(f"run {run_dir} (config tiny): finished (last write ")
    assert "steps: 5 done, 0 running, 0 pending" in lines
    assert step_line(lines, "curate").split(None, 2)[1:] == ["done", "10/10 stages, 200 samples"]
    assert step_line(lines, "train").split(None, 2)[1:] == ["done", f"{TOTAL} steps, final loss {1 / TOTAL:.4g}"]
    assert step_line(lines, "baseline_curate").split(None, 2)[1] == "done"
    assert "student-curated 10" in step_line(lines, "eval") and "(50.0% correct)" in step_line(lines, "eval")
    # The funnel, one row per stage, rounded.
    assert any(line.split() == ["strong_filter", "320", "300", "20", "0", "1.2"] for line in lines)
    assert "curation funnel (baseline/curate/):" not in lines  # the control's funnel is shown while it runs
    assert lines[-1] == f"summary: {run_dir / 'summary.md'}"


def test_status_of_a_run_killed_mid_curation(run_dir: Path) -> None:
    curate_dir = run_dir / "curate"
    curate(curate_dir, ["ingest", "dedup", "decontaminate", "weak_filter"])
    stage = curate_dir / "strong_filter"
    requests = [{"problem_id": f"p{i}", "attempt_indices": list(range(8))} for i in range(12)]
    log_requests(stage / "requests", "round-1", requests)
    store = GenerationStore(stage / "generations")
    for batch in range(3):  # three batches of 4 problems x 8 samples stored before the kill
        store.append(
            {"key": f"{batch}-{i}", "problem_id": f"p{i}", "attempt_index": i % 8, "num_tokens": 10, "correct": False}
            for i in range(32)
        )
    kill_holding_the_lock(run_dir)

    status = read_status(run_dir)
    assert status.alive is False and not status.finished
    lines = format_status(status).splitlines()
    assert "not running (last held by pid" in lines[0] and "the same command resumes it" in lines[0]
    assert "steps: 0 done, 0 running, 1 stopped, 4 pending" in lines
    assert step_line(lines, "curate").split(None, 2)[1:] == ["stopped", "4/10 stages done; strong_filter in progress"]
    assert any(line.split()[:2] == ["weak_filter", "340"] for line in lines)
    assert "  strong_filter  stopped: 96 samples stored; last asked (round-1): 12 problems, 96 samples" in lines
    assert step_line(lines, "train").split() == ["train", "pending"]


def test_status_of_a_run_in_training_while_it_holds_the_folder(run_dir: Path) -> None:
    curate(run_dir / "curate", list(STAGE_NAMES))
    log_steps(run_dir / "train", 5)
    with open(run_dir / "train" / METRICS_FILE, "a") as handle:
        handle.write('{"step": 6, "epo')  # a row being written

    with run_lock(run_dir):  # this test process is the `limo run` holding it
        status = read_status(run_dir)
    assert status.alive is True and status.holder is not None and status.holder.pid == os.getpid()
    lines = format_status(status).splitlines()
    assert lines[0].startswith(f"run {run_dir} (config tiny): running (pid {os.getpid()} on ")
    assert "steps: 1 done, 1 running, 3 pending" in lines
    assert step_line(lines, "train").split(None, 2)[1:] == [
        "running",
        f"step 5/{TOTAL} (epoch 1.67), loss 0.2, lr 5e-06, 1,234 tokens/s",
    ]
    assert any(line.startswith(f"training (train/): step 5/{TOTAL}") and line.endswith(" s ago") for line in lines)


def test_a_run_folder_on_another_machine_is_neither_running_nor_stopped_but_in_progress(run_dir: Path) -> None:
    curate(run_dir / "curate", ["ingest"])
    (run_dir / ".lock").write_text("pid 4242 on ray-head-0 since 2026-12-02 12:00:00")
    lines = status_lines(run_dir)
    assert "held by pid 4242 on ray-head-0 since 2026-12-02 12:00:00, another machine" in lines[0]
    assert step_line(lines, "curate").split()[1:3] == ["in", "progress"]


def test_limo_status_cli_prints_it_without_ray_and_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    write_resolved_config(load_config("tiny"), folder)
    curate(folder / "curate", ["ingest", "dedup"])
    script = (
        "import sys\nfrom limo_ray.cli import main\ncode = main(['status', sys.argv[1]])\n"
        "print('ray imported:', 'ray' in sys.modules)\nsys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"run {folder} (config tiny): not running")
    assert done.stdout.splitlines()[-1] == "ray imported: False"
    assert main(["status", str(tmp_path / "nothing")]) == 2


@pytest.fixture(autouse=True)
def _no_ray_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
