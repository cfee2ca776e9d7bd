"""The control for the LIMO effect: a random selection of problems, put through the same chain stages.

`limo run` trains the student twice, on the curated dataset and on this one, so what the cascade adds is
measured rather than assumed. Same pool, same ingest/dedup/decontaminate, same chain models, quality scorer
and best-chain choice; only *which problems* differs: a seeded random sample instead of the weak/strong
cascade and balance. Enough candidates are drawn that, after problems without any correct chain drop out, the
baseline has as many samples as the curated dataset; those are taken in the same random order, not by score.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from limo_ray.config import RunConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.quality_stage import Quality, read_scored_chains
from limo_ray.curate.select import SELECTED_FILE, Select, best_chains
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.records import Problem
from limo_ray.runfolder import write_json_atomic

# Candidates per wanted sample: random problems include ones no chain model solves (the hardest levels).
OVERSAMPLE = 1.5


def _random_order(problems: Sequence[Problem], seed: int) -> list[Problem]:
    ordered = sorted(problems, key=lambda p: p.id)  # input order must not matter, only the seed
    random.Random(f"limo-ray-random-baseline:{seed}").shuffle(ordered)
    return ordered


class RandomSample(Stage):
    """A seeded random sample of `ceil(size * OVERSAMPLE)` problems: the baseline's stand-in for the cascade."""

    name = "random_sample"

    def __init__(self, size: int) -> None:
        self.size = size

    def config_view(self, config: RunConfig) -> dict[str, Any]:
        return {"size": self.size, "oversample": OVERSAMPLE, "seed": config.seed}

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        wanted = math.ceil(self.size * OVERSAMPLE)
        order = _random_order(problems, ctx.config.seed)
        chosen = {p.id for p in order[:wanted]}
        kept = [p for p in problems if p.id in chosen]
        decisions = [
            Decision(p.id, "kept" if p.id in chosen else "dropped", "sampled" if p.id in chosen else "not_sampled")
            for p in problems
        ]
        return StageResult(kept, decisions, facts={"size": self.size, "candidates": len(kept)})


class RandomSelect(Select):
    """Like `select` (best chain per problem, same file for `export`), but the problems in random order."""

    def __init__(self, size: int) -> None:
        self.size = size

    def config_view(self, config: RunConfig) -> dict[str, Any]:
        return {**super().config_view(config), "size": self.size, "order": "random", "seed": config.seed}

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        best = best_chains(read_scored_chains(ctx.stage_dir(Quality.name)), ctx.config.curate.chains.models)
        candidates = [p for p in _random_order(problems, ctx.config.seed) if p.id in best]
        chosen = {p.id for p in candidates[: self.size]}
        kept = [p for p in problems if p.id in chosen]
        decisions = [
            Decision(
                p.id,
                "kept" if p.id in chosen else "dropped",
                "random_pick" if p.id in chosen else "beyond_size",
                {"model": best[p.id]["model"], "score": best[p.id]["score"]},
            )
            for p in candidates
        ]
        write_json_atomic(
            ctx.stage_dir(self.name) / SELECTED_FILE,
            {p.id: {k: v for k, v in best[p.id].items() if k != "response"} for p in kept},
        )
        return StageResult(kept, decisions, facts={"size": self.size, "candidates": len(candidates)})


def random_baseline_stages(size: int) -> list[Stage]:
    """ingest -> dedup -> decontaminate -> random_sample -> chains -> quality -> select (random) -> export."""
    from limo_ray.curate.chains import Chains
    from limo_ray.curate.decontaminate import Decontaminate
    from limo_ray.curate.dedup import Dedup
    from limo_ray.curate.export import Export
    from limo_ray.curate.ingest import Ingest

    return [
        Ingest(),
        Dedup(),
        Decontaminate(),
        RandomSample(size),
        Chains(),
        Quality(),
        RandomSelect(size),
        Export(),
    ]
