"""A finished stage is reused only against the same inputs: `toy:` paths count as what they resolve to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.ingest import Ingest
from limo_ray.curate.pipeline import run_curation
from limo_ray.errors import LimoError


def _pool(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"problem": t, "answer": "1"}) + "\n" for t in texts))
    return path


def test_a_rebuilt_toy_world_invalidates_finished_stages(tmp_path: Path) -> None:
    config = load_config("tiny")  # pool: toy:pool
    world_a = _pool(tmp_path / "a.jsonl", ["What is 1 - 0?", "What is 2 - 1?"])
    world_b = _pool(tmp_path / "b.jsonl", ["What is 3 - 2?"])

    def resolver(pool: Path):
        return lambda ref: str(pool) if ref == "toy:pool" else ref.replace("toy:", "/worlds/a/")

    run_dir = tmp_path / "run"
    first = run_curation(CurateContext(config, run_dir, resolver(world_a), log=lambda _: None), stages=[Ingest()])
    again = run_curation(CurateContext(config, run_dir, resolver(world_a), log=lambda _: None), stages=[Ingest()])
    assert not first[0].skipped and again[0].skipped
    with pytest.raises(LimoError, match="completed with other settings"):
        run_curation(CurateContext(config, run_dir, resolver(world_b), log=lambda _: None), stages=[Ingest()])
