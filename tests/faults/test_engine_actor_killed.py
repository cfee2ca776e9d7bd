"""A fault users meet: an engine actor dies mid-stage (node lost, OOM killer). The stage must still finish with
every problem decided, nothing drawn twice, and no failed rows standing in for the lost batch."""

from __future__ import annotations

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
from limo_ray.curate.pipeline import curation_stages, run_curation
from limo_ray.toy.references import resolve_references

pytestmark = pytest.mark.integration


def test_killing_the_engine_actor_mid_weak_filter_loses_and_repeats_nothing(tmp_path: Path) -> None:
    import ray

    config = resolve_references(load_config("tiny", ["toy.size=test"]))
    lines: list[str] = []
    ctx = CurateContext(run_dir=tmp_path, log=lines.append)
    killed: list[int] = []

    def kill_the_engine_once_it_works() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            pool = ctx.engines._pool
            if pool is not None and any("weak_filter: round 1/" in line for line in lines):
                [pid] = pool.actor_pids()  # waits for the engine to be up: it is then given its batch
                time.sleep(0.5)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_engine_once_it_works, daemon=True)
    killer.start()
    try:
        run_curation(ctx, curation_stages(config, "weak_filter"))
    finally:
        ray.shutdown()
    killer.join(timeout=5)
    assert killed, "the engine actor was never killed: the test proved nothing"
    assert any("engine actor(s) failed and were replaced" in line for line in lines)

    ledger = read_ledger(ctx.curate_dir)
    decided = [row for row in ledger if row.get("decontaminate") == "kept"]
    assert decided and all(row.get("weak_filter") in ("kept", "dropped") for row in decided)
    assert not [row for row in decided if row.get("weak_filter_reason") in ("engine_error", "undecided")]
    attempts = list(stored_attempts(ctx.stage_dir("weak_filter") / "generations"))
    keys = [a["key"] for a in attempts]
    assert len(keys) == len(set(keys))  # the re-sent batch was stored once
    assert all(a["error"] is None for a in attempts)
    drawn = sum(len(row["weak_filter_facts"]["outcomes"]) for row in decided)
    assert drawn == len(keys)  # every stored attempt is one the ledger counts, and the other way round
