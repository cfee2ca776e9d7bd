"""Engine actors that outlive one dataset run: rounds of a stage, and stages on the same model, share them.

A Ray Data `map_batches` run owns its actors and ends them with the run, so each round of a filter paid a full
engine start (measured here: about 40 s of actor start, vLLM import and engine init per start, 244 s of a
616 s curation). Curation sends its requests in rounds that depend on the previous round's grades, so it
keeps the engines in a pool instead: batches go to the least busy actor, results come back as they finish.

Placement: on GPUs every engine actor sits in a placement group of its own (`engine.placement`: one rule for
engines, Serve, training and `limo plan`), created with a timeout and removed when the actor is closed or
replaced, so a stage's GPUs are free before the next stage asks for them.

Faults: a batch whose actor died (node lost, process killed) or whose engine failed as a whole is sent again
to a fresh actor, up to `max_retries` times; one bad prompt fails alone inside the actor (`EngineActor`), so
a poisoned row is recorded, not retried forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from limo_ray.engine.actor import BATCHES_IN_FLIGHT, EngineActor
from limo_ray.engine.placement import actor_options, release, replica_placement, reserve
from limo_ray.engine.spec import EngineSpec
from limo_ray.errors import LimoError

# Seconds to wait for an engine's GPUs before saying the stage cannot be placed (an autoscaler may be adding a
# node: minutes on a real cluster).
DEFAULT_PLACEMENT_TIMEOUT_S = 900.0

# Batches in flight per actor. The actor is threaded and feeds every batch it holds into one running engine
# (`EngineActor`), so while the slowest samples of one batch finish, the next batch's requests already fill
# the freed slots; and the driver grades and stores one batch while the engine works on the others.
IN_FLIGHT_PER_ACTOR = BATCHES_IN_FLIGHT


class EnginePool:
    """`size` engine actors for one model; `generate` streams result batches in completion order."""

    def __init__(
        self,
        spec: EngineSpec,
        size: int = 1,
        max_retries: int = 3,
        *,
        gpus_per_node: int = 0,
        placement_timeout_s: float = DEFAULT_PLACEMENT_TIMEOUT_S,
        node_resources: Mapping[str, float] | None = None,
        stage: str = "",
        engine_cls: type = EngineActor,
    ) -> None:
        """`engine_cls` is the actor's body: `EngineActor`, or a stand-in with its constructor that holds the same
        resources (`limo plan --simulate`'s probe). `node_resources` (`cluster.node_resources.engines`): custom
        resources each actor (on GPUs, each bundle of its group) asks for, to keep engines on the nodes that
        declare them."""
        if size < 1:
            raise LimoError(f"an engine pool needs at least one engine, got {size}")
        self.spec = spec
        self.size = size
        self.max_retries = max_retries
        self.node_resources = dict(node_resources or {})
        self.placement = replica_placement(spec, gpus_per_node, self.node_resources)
        self.placement_timeout_s = placement_timeout_s
        self.stage = stage or f"engine {spec.name!r}"
        self.engine_cls = engine_cls
        self.replaced = 0  # actors started again after a failure (for logs and tests)
        self._actors: list[Any] = []
        self._groups: list[Any] = []  # the placement group of each actor (None on CPU)
        try:
            for _ in range(size):
                actor, group = self._start()
                self._actors.append(actor)
                self._groups.append(group)
        except BaseException:
            self.close()
            raise

    def _start(self) -> tuple[Any, Any]:
        """One engine actor, in a placement group of its own on GPUs (placed within the timeout, or an error)."""
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        # Threads for the batches in flight, plus the small calls (ready, pid) that must not wait behind them.
        grouped = self.spec.device == "cuda"  # every GPU engine gets a group of its own, a CPU one none
        options = {**actor_options(self.spec, self.node_resources, grouped), "max_concurrency": IN_FLIGHT_PER_ACTOR + 2}
        group = None
        if grouped:
            group = reserve(
                self.placement.bundles,
                self.placement.strategy,
                f"{self.stage} (engine {self.spec.name!r}, replica {len(self._actors) + 1} of {self.size})",
                self.placement_timeout_s,
            )
            # Tensor/pipeline-parallel workers vLLM starts from the actor land in the same group.
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_capture_child_tasks=True
            )
        try:
            return ray.remote(self.engine_cls).options(**options).remote(self.spec, {}), group
        except BaseException:
            release(group)
            raise

    def placement_groups(self) -> list[Any]:
        """The live placement groups this pool holds (one per GPU actor)."""
        return [g for g in self._groups if g is not None]

    def actors(self) -> list[Any]:
        return list(self._actors)

    def ready_times(self) -> list[float]:
        """When each engine finished starting (waits for engines still starting)."""
        import ray

        return ray.get([actor.ready.remote() for actor in self._actors])

    def node_ids(self) -> list[str]:
        """The node each engine actor runs on (waits for engines still starting)."""
        import ray

        return ray.get([actor.node_id.remote() for actor in self._actors])

    def actor_pids(self) -> list[int]:
        import ray

        return ray.get([actor.pid.remote() for actor in self._actors])

    def generate(
        self, batches: Iterable[Mapping[str, list[Any]]], sampling: Mapping[str, Any]
    ) -> Iterator[dict[str, list[Any]]]:
        """Each batch (columns, as `EngineActor` takes them) through an engine; output batches as they finish."""
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
        release(self._groups[i])
        self._groups[i] = None
        self._actors[i], self._groups[i] = self._start()
        self.replaced += 1

    def close(self) -> None:
        """Kill every actor and remove its placement group: the pool's GPUs go back to the cluster now."""
        import ray

        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        for group in self._groups:
            release(group)
        self._actors, self._groups = [], []


class EngineCache:
    """At most one live pool per run: a stage on the same model reuses it; another model replaces it (two
    engines may not fit the cluster at once, and the stages that use them run one after the other). The old
    pool is closed, its placement groups removed, before the new one asks for resources."""

    def __init__(self, **pool_options: Any) -> None:
        """`pool_options`: `EnginePool` keywords for every pool (GPUs per node, placement timeout, engine body)."""
        self._pool: EnginePool | None = None
        self.pool_options = pool_options

    @property
    def current(self) -> EnginePool | None:
        return self._pool

    def pool(self, spec: EngineSpec, size: int, stage: str = "", **options: Any) -> EnginePool:
        """The live pool for (spec, size), else a new one (`options`: more `EnginePool` keywords)."""
        if self._pool is not None and (self._pool.spec, self._pool.size) == (spec, size):
            return self._pool
        self.close()
        self._pool = EnginePool(spec, size, stage=stage, **{**self.pool_options, **options})
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
