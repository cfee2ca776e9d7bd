"""An engine actor SIGKILLed in the middle of the weak filter: Ray restarts it, its rows are retried, nothing
is lost or stored twice, and every problem is decided (none recorded as an engine error)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.generations import stored_attempts
from limo_ray.curate.ledger import read_ledger
from limo_ray.curate.pipeline import run_curation

pytestmark = pytest.mark.integration

ENGINE_ACTOR = "MapWorker(MapBatches(VLLMStage))"


def _engine_actor_pids() -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(filters=[("class_name", "=", ENGINE_ACTOR), ("state", "=", "ALIVE")])
    return [int(a.pid) for a in actors if a.pid]


def test_killing_the_engine_actor_mid_stage_loses_and_duplicates_nothing(
    tmp_path: Path, report, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from limo_ray.curate import sampling

    # Small batches: the round is several engine batches, so the kill lands with some stored and some in flight.
    monkeypatch.setattr(sampling, "SEQUENCES_PER_BATCH", 64)
    from limo_ray.cli import _path_resolver
    from limo_ray.toy import build_toy_world

    world = build_toy_world("test", seed=0, progress=False)
    pool = tmp_path / "pool.jsonl"
    rows = world.pool.read_text().splitlines()[:256]
    pool.write_text("\n".join(rows) + "\n")
    config = load_config("tiny", ["toy.size=test", f"curate.pool.sources=[{json.dumps(str(pool))}]"])
    lines: list[str] = []
    ctx = CurateContext(config=config, run_dir=tmp_path / "run", resolve_path=_path_resolver(config), log=lines.append)
    failure: list[BaseException] = []

    def curate() -> None:
        try:
            run_curation(ctx, until="weak_filter")
        except BaseException as exc:  # surfaced in the test thread
            failure.append(exc)

    worker = threading.Thread(target=curate)
    worker.start()
    generations = ctx.stage_dir("weak_filter") / "generations"
    killed = None
    deadline = time.monotonic() + 600
    try:
        # Kill once the first batch is stored: the engine is mid-stage, with requests in flight.
        while killed is None and worker.is_alive() and time.monotonic() < deadline:
            if list(generations.glob("part-*.parquet")) and (pids := _engine_actor_pids()):
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            time.sleep(0.2)
        worker.join(timeout=900)
    finally:
        if worker.is_alive():
            pytest.fail("curation did not finish after the engine actor was killed")
        ray.shutdown()
    assert killed is not None, "the weak filter finished before an engine actor could be killed"
    assert not failure, failure

    stored = [(r["problem_id"], r["attempt_index"]) for r in stored_attempts(generations)]
    assert len(stored) == len(set(stored))
    ledger = read_ledger(ctx.curate_dir)
    seen = [row for row in ledger if row.get("weak_filter") is not None]
    assert len(seen) == sum(1 for row in ledger if row.get("decontaminate") == "kept") > 0
    reasons = {row["weak_filter_reason"] for row in seen}
    assert reasons <= {"solved_by_weak", "unsolved_by_weak"}, reasons
    for row in seen:  # every decision rests on stored attempts, in index order, as many as the rule drew
        facts = row["weak_filter_facts"]
        assert facts["attempts"] == len(facts["outcomes"]) >= 1
    report(f"engine actor pid {killed} SIGKILLed mid weak_filter: {len(seen)} problems decided, {len(stored)} attempts")
