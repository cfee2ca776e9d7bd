"""The line `limo run` prints for a training: the loss to 4 significant digits, skipped or resumed in words."""

from __future__ import annotations

from pathlib import Path

from limo_ray.console import classify
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
