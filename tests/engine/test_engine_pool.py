"""The engine pool for real: vLLM (CPU build) in Ray actors that outlive a call, and a killed engine actor.

Plumbing only, on a random tiny Qwen2 (answers don't matter here).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from limo_ray.config import ClusterConfig
from limo_ray.engine import EngineCache, EnginePool, EngineSpec, init_ray
from tests.fixtures import build_tiny_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> EngineSpec:
    model = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")
    return EngineSpec(name="tiny", model=str(model), max_model_len=256, device="cpu", system_prompt="Be brief.")


@pytest.fixture(scope="module")
def pool(spec: EngineSpec) -> Iterator[EnginePool]:
    import ray

    init_ray(ClusterConfig(), num_cpus=2)
    engines = EnginePool(spec)
    yield engines
    engines.close()
    ray.shutdown()


def _batches(count: int, rows: int, n: int) -> list[dict[str, list]]:
    return [
        {
            "problem": [f"What is {b} + {i}?" for i in range(rows)],
            "tag": [f"{b}-{i}" for i in range(rows)],
            "n": [n] * rows,
        }
        for b in range(count)
    ]


def test_one_engine_serves_calls_with_different_sampling(pool: EnginePool) -> None:
    ready = pool.ready_times()
    first = list(pool.generate(_batches(3, 4, 2), {"temperature": 0.8, "max_tokens": 4}))
    second = list(pool.generate(_batches(2, 4, 1), {"temperature": 0.0, "max_tokens": 6}))
    assert pool.ready_times() == ready  # the same engine, not a new one per call
    assert sorted(t for out in first for t in out["tag"]) == sorted(f"{b}-{i}" for b in range(3) for i in range(4))
    assert all(len(c) == 2 for out in first for c in out["completions"])
    assert all(t <= 4 for out in first for counts in out["completion_tokens"] for t in counts)
    assert all(len(c) == 1 for out in second for c in out["completions"])
    assert all(t <= 6 for out in second for counts in out["completion_tokens"] for t in counts)


def test_a_killed_engine_actor_is_replaced_and_its_batch_answered(pool: EnginePool) -> None:
    [pid] = pool.actor_pids()
    batches = _batches(6, 16, 4)
    sampling = {"temperature": 0.8, "max_tokens": 64, "ignore_eos": True}
    got: list[dict[str, list]] = []
    killed = threading.Event()

    def kill_once_running() -> None:
        # After the first result the actor is busy with the next queued batches: kill it mid-generation.
        while not got:
            threading.Event().wait(0.05)
        os.kill(pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_once_running, daemon=True)
    killer.start()
    for out in pool.generate(batches, sampling):
        got.append(out)
    killer.join(timeout=60)
    assert killed.is_set()
    assert pool.replaced == 1 and pool.actor_pids() != [pid]
    tags = [t for out in got for t in out["tag"]]
    assert sorted(tags) == sorted(t for b in batches for t in b["tag"])  # every row answered, none twice
    assert all(len(c) == 4 for out in got for c in out["completions"])


def test_engine_cache_reuses_a_pool_for_the_same_model_and_replaces_it_for_another(spec: EngineSpec, pool) -> None:
    cache = EngineCache()
    try:
        first = cache.pool(spec, 1)
        assert cache.pool(spec, 1) is first
        other = cache.pool(EngineSpec(**{**spec.__dict__, "name": "tiny-b"}), 1)
        assert other is not first and first._actors == []  # the first pool's actors were let go
        [out] = list(other.generate(_batches(1, 2, 1), {"max_tokens": 2}))
        assert out["tag"] == ["0-0", "0-1"]
    finally:
        cache.close()


def test_the_next_batch_starts_before_the_slowest_sample_of_the_previous_one_finishes(pool: EnginePool) -> None:
    """The engine is fed continuously: the second batch in flight joins the running engine while the first
    batch's long sample is still decoding (timestamps the engine loop records per request, not timing bounds)."""
    first = {"problem": ["Write a long story.", "Hi."], "tag": ["long", "short"], "n": [1, 1], "max_tokens": [200, 4]}
    second = {"problem": ["Hello.", "Hey."], "tag": ["b-0", "b-1"], "n": [2, 1], "max_tokens": [4, 4]}
    sampling = {"temperature": 0.8, "max_tokens": 8, "ignore_eos": True}
    outs = {out["tag"][0]: out for out in pool.generate([first, second], sampling)}
    assert set(outs) == {"long", "b-0"}
    long_row = outs["long"]
    assert long_row["completion_tokens"][0] == [200] and long_row["completion_tokens"][1] == [4]
    assert [len(c) for c in outs["b-0"]["completions"]] == [2, 1]
    slowest_of_first = max(long_row["request_finished_at"])
    assert min(outs["b-0"]["request_started_at"]) < slowest_of_first
    # ...and the second batch was answered before the first one's slowest sample was done.
    assert max(outs["b-0"]["request_finished_at"]) < slowest_of_first
