"""The lines `limo run` prints for a training: the loss to 4 significant digits, skipped or resumed in words; and
the progress lines the driver reads from metrics.jsonl while the workers train."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from limo_ray.console import classify
from limo_ray.train.metrics import MetricsFollower, MetricsLog, following, progress_line
from limo_ray.train.run import TrainResult


def _result(**changes: object) -> TrainResult:
    facts: dict = {
        "run_dir": Path("/r"),
        "complete": True,
        "checkpoint": Path("/r/train/checkpoint"),
        "metrics_path": Path("/r/train/metrics.jsonl"),
        "steps": 21,
        "total_steps": 21,
        "steps_per_epoch": 7,
        "final_loss": 0.09282780220495403,
        "resumed_from_step": 0,
        "seconds": 90.2,
    }
    return TrainResult(**{**facts, **changes})  # type: ignore[arg-type]


def test_the_training_line_rounds_the_loss_and_says_what_happened_in_words() -> None:
    assert _result().status() == "complete: 21 steps, final loss 0.09283, checkpoint /r/train/checkpoint"
    resumed = _result(resumed_from_step=14).status()
    assert resumed.startswith("complete: 21 steps, resumed from the checkpoint at step 14, final loss 0.09283, ")
    assert _result(skipped=True).status() == "complete already (21 steps), skipped: checkpoint /r/train/checkpoint"
    assert _result(complete=False, steps=12).status() == "stopped at step 12/21 (re-run resumes)"
    for result in (_result(), _result(skipped=True), _result(complete=False, steps=12)):  # the console keeps them
        assert classify(f"[run] train (curated): {result.status()}").kind == "note"


def test_the_follower_reads_whole_new_rows_once_and_goes_on_after_a_resume_cut_the_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    log.append({"step": 1, "loss": 2.0})
    follower = MetricsFollower(path, from_the_end=True)
    assert follower.new_rows() == []  # rows of an earlier run are not new
    log.append({"step": 2, "loss": 1.5})
    with path.open("a") as handle:
        handle.write('{"step": 3, "lo')  # rank 0's row, half written
    assert follower.new_rows() == [{"step": 2, "loss": 1.5}]
    with path.open("a") as handle:
        handle.write('ss": 1.25}\n')
    assert follower.new_rows() == [{"step": 3, "loss": 1.25}]
    assert follower.new_rows() == []
    log.truncate_after(1)  # a resume from the checkpoint at step 1 cuts the later rows
    log.append({"step": 2, "loss": 1.4})
    assert follower.new_rows() == [{"step": 2, "loss": 1.4}]
    assert MetricsFollower(tmp_path / "none.jsonl").new_rows() == []


def test_a_training_step_is_a_progress_line_of_the_console() -> None:
    line = progress_line({"step": 5, "loss": 0.41234567, "tokens_per_s": 1234.6}, 21)
    assert line == "[train] step 5/21, loss 0.4123, 1235 tokens/s"
    sorted_line = classify(line)
    assert sorted_line.kind == "progress" and sorted_line.progress is not None
    assert (sorted_line.progress.scope, sorted_line.progress.done, sorted_line.progress.total) == ("train", 5, 21)
    assert sorted_line.progress.rate == 1235 and sorted_line.progress.unit == "steps"
    assert classify(progress_line({"step": 1}, 3)).kind == "progress"  # a row without loss or rate


def test_following_reports_rows_written_while_the_body_runs_and_the_last_ones_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path)
    said: list[str] = []
    with following(path, 3, said.append, every_s=0.05):
        log.append({"step": 1, "loss": 1.0})
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.01)
        assert said == ["[train] step 1/3, loss 1"] and threading.active_count() >= 2
        log.append({"step": 2, "loss": 0.5})
        path.open("a").write(json.dumps({"step": 3, "loss": 0.25}) + "\n")
    assert said == ["[train] step 1/3, loss 1", "[train] step 2/3, loss 0.5", "[train] step 3/3, loss 0.25"]
