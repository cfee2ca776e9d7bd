"""Run folder: resolved config, atomic writes, manifests that mark completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.errors import LimoError
from limo_ray.runfolder import Manifest, atomic_open, is_complete, read_resolved_config, write_resolved_config


def test_resolved_config_is_written_and_a_change_is_stored_with_the_settings_that_changed(tmp_path: Path) -> None:
    cfg = load_config("tiny")
    assert write_resolved_config(cfg, tmp_path) == []
    assert read_resolved_config(tmp_path) == cfg
    assert write_resolved_config(cfg, tmp_path) == []  # same config again (resume)
    changed = load_config("tiny", ["train.epochs=9", "eval.concurrency=3"])
    # Stages guard their own outputs by their settings; the folder keeps the config the last command ran with.
    assert write_resolved_config(changed, tmp_path) == ["eval.concurrency", "train.epochs"]
    assert read_resolved_config(tmp_path) == changed


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "data.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_manifest_marks_completion_and_config_hash(tmp_path: Path) -> None:
    assert not is_complete(tmp_path)
    Manifest("dedup", ["a.parquet"], 10, 8, 2, "abc", 1.5, complete=False).write(tmp_path)
    assert not is_complete(tmp_path)
    Manifest("dedup", ["a.parquet"], 10, 8, 2, "abc", 1.5, complete=True).write(tmp_path)
    assert is_complete(tmp_path) and is_complete(tmp_path, "abc") and not is_complete(tmp_path, "other")
    data = json.loads((tmp_path / "manifest.json").read_text())
    for key in ("stage", "inputs", "rows_in", "rows_out", "rows_rejected", "config_hash", "seconds", "complete"):
        assert key in data


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(LimoError, match="not a limo-ray manifest"):
        is_complete(tmp_path)


def test_summary_steps_are_told_in_words_and_rounded() -> None:
    from limo_ray.run import step_details

    facts = {"seconds": 90.2, "skipped": False, "final_loss": 0.09282780220495403, "steps": 21}
    assert step_details(facts) == "ran, final loss 0.09283, steps 21"
    assert step_details({"seconds": 0.0, "skipped": True, "samples": 200}) == "skipped (complete), samples 200"
