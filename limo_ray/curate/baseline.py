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
from dataclasses import dataclass

from limo_ray.curate.context import CurateContext
from limo_ray.curate.quality_stage import read_scored_chains
from limo_ray.curate.select import Select, best_chains, write_selected
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.records import Problem

# Candidates per wanted sample: random problems include ones no chain model solves (the hardest levels).
OVERSAMPLE = 1.5


def _random_order(problems: Sequence[Problem], seed: int) -> list[Problem]:
    ordered = sorted(problems, key=lambda p: p.id)  # input order must not matter, only the seed
    random.Random(f"limo-ray-random-baseline:{seed}").shuffle(ordered)
    return ordered


@dataclass(frozen=True)
class RandomSample(Stage):
    """A seeded random sample of `ceil(size * oversample)` problems: the baseline's stand-in for the cascade."""

    name = "random_sample"
    size: int
    seed: int
    oversample: float = OVERSAMPLE

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        wanted = math.ceil(self.size * self.oversample)
        order = _random_order(problems, self.seed)
        chosen = {p.id for p in order[:wanted]}
        kept = [p for p in problems if p.id in chosen]
        decisions = [
            Decision(p.id, "kept" if p.id in chosen else "dropped", "sampled" if p.id in chosen else "not_sampled")
            for p in problems
        ]
        return StageResult(kept, decisions, facts={"size": self.size, "candidates": len(kept)})


@dataclass(frozen=True)
class RandomSelect(Select):
    """Like `select` (best chain per problem, same file for `export`), but the problems in random order."""

    seed: int = 0

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        best = best_chains(read_scored_chains(ctx.curate_dir), self.models)
        candidates = [p for p in _random_order(problems, self.seed) if p.id in best]
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
        write_selected(ctx.curate_dir, best, kept)
        return StageResult(kept, decisions, facts={"size": self.size, "candidates": len(candidates)})
