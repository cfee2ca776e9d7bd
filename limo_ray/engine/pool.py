"""Engine actors that outlive one dataset run: rounds of a stage, and stages on the same model, share them.

A Ray Data `map_batches` run owns its actors and ends them with the run, so each round of a filter paid a full
engine start (measured here: about 40 s of actor start, vLLM import and engine init per start, 244 s of a
616 s curation). Curation sends its requests in rounds that depend on the previous round's grades, so it
keeps the engines in a pool instead: batches go to the least busy actor, results come back as they finish.

Faults: a batch whose actor died (node lost, process killed) or whose engine failed as a whole is sent again
to a fresh actor, up to `max_retries` times; one bad prompt fails alone inside the actor (`VLLMStage`), so
a poisoned row is recorded, not retried forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from limo_ray.engine.spec import EngineSpec
from limo_ray.engine.stage import VLLMStage, placement_group_args
from limo_ray.errors import LimoError

# Batches queued per actor: the next batch is already waiting when one finishes, so the engine never idles
# while the driver grades and stores.
IN_FLIGHT_PER_ACTOR = 2


class EnginePool:
    """`size` engine actors for one model; `generate` streams result batches in completion order."""

    def __init__(self, spec: EngineSpec, size: int = 1, max_retries: int = 3) -> None:
        if size < 1:
            raise LimoError(f"an engine pool needs at least one engine, got {size}")
        self.spec = spec
        self.size = size
        self.max_retries = max_retries
        self.replaced = 0  # actors started again after a failure (for logs and tests)
        self._actors = [self._start() for _ in range(size)]

    def _start(self) -> Any:
        import ray

        options: dict[str, Any] = dict(self.spec.actor_options())
        if self.spec.needs_placement_group():
            options.update(placement_group_args(self.spec)())
        return ray.remote(VLLMStage).options(**options).remote(self.spec, {})

    def ready_times(self) -> list[float]:
        """When each engine finished starting (waits for engines still starting)."""
        import ray

        return ray.get([actor.ready.remote() for actor in self._actors])

    def actor_pids(self) -> list[int]:
        import ray

        return ray.get([actor.pid.remote() for actor in self._actors])

    def generate(
        self, batches: Iterable[Mapping[str, list[Any]]], sampling: Mapping[str, Any]
    ) -> Iterator[dict[str, list[Any]]]:
        """Each batch (columns, as `VLLMStage` takes them) through an engine; output batches as they finish."""
        import ray

        waiting: deque[tuple[Mapping[str, list[Any]], int]] = deque((b, 0) for b in batches)
        running: dict[Any, tuple[int, Any, Mapping[str, list[Any]], int]] = {}
        load = [0] * self.size
        while waiting or running:
            while waiting and min(load) < IN_FLIGHT_PER_ACTOR:
                i = load.index(min(load))
                batch, tries = waiting.popleft()
                actor = self._actors[i]
                running[actor.__call__.remote(batch, dict(sampling))] = (i, actor, batch, tries)
                load[i] += 1
            [done], _ = ray.wait(list(running), num_returns=1)
            i, actor, batch, tries = running.pop(done)
            load[i] -= 1
            try:
                out = ray.get(done)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as error:
                if tries >= self.max_retries:
                    raise LimoError(
                        f"engine {self.spec.name!r} failed a batch {tries + 1} times; last error: {error}"
                    ) from error
                if self._actors[i] is actor:  # the other calls queued on a dead actor fail too: replace it once
                    self._replace(i)
                waiting.appendleft((batch, tries + 1))
                continue
            yield out

    def _replace(self, i: int) -> None:
        import ray

        ray.kill(self._actors[i], no_restart=True)
        self._actors[i] = self._start()
        self.replaced += 1

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []


class EngineCache:
    """At most one live pool per run: a stage on the same model reuses it; another model replaces it (two
    engines may not fit the cluster at once, and the stages that use them run one after the other)."""

    def __init__(self) -> None:
        self._pool: EnginePool | None = None

    def pool(self, spec: EngineSpec, size: int) -> EnginePool:
        if self._pool is not None and (self._pool.spec, self._pool.size) == (spec, size):
            return self._pool
        self.close()
        self._pool = EnginePool(spec, size)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
