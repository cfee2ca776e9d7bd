"""balance: sample the hard problems down to a target size, evenly over domain x difficulty, diverse within a cell.

Quotas are water-filled: every cell gets an equal share; a cell with less supply than its share gives the rest
to the others, so with enough supply every quota is within +-1 of the even share, and with too little the
short cells are named. Within a cell, problems are picked farthest-first by MinHash distance (a seeded start,
then always the problem least similar to those already picked), so a cell is not filled with rewordings of
one problem. Same seed, same selection.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from limo_ray.config import BalanceConfig, DedupConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.dedup import dedup_key, shingles
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.records import Problem

Cell = tuple[str, ...]


def cell_of(problem: Problem, dimensions: Sequence[str]) -> Cell:
    return tuple((getattr(problem, d) or "unknown") for d in dimensions)


def water_fill(supply: Mapping[Cell, int], total: int) -> dict[Cell, int]:
    """Integer quotas summing to min(total, supply), as even as the supply allows (deterministic)."""
    quotas = dict.fromkeys(supply, 0)
    remaining = min(total, sum(supply.values()))
    open_cells = sorted(c for c in supply if supply[c] > 0)
    while remaining > 0 and open_cells:
        share, extra = divmod(remaining, len(open_cells))
        for i, cell in enumerate(open_cells):
            give = min(share + (1 if i < extra else 0), supply[cell] - quotas[cell])
            quotas[cell] += give
            remaining -= give
        open_cells = [c for c in open_cells if quotas[c] < supply[c]]
    return quotas


def farthest_first(signatures: np.ndarray, count: int, rng: random.Random) -> list[int]:
    """Indices of `count` rows picked greedily to maximise the minimum MinHash distance to those picked."""
    size = len(signatures)
    if count >= size:
        return list(range(size))
    picked = [rng.randrange(size)]
    nearest = 1.0 - (signatures == signatures[picked[0]]).mean(axis=1)
    nearest[picked[0]] = -1.0
    while len(picked) < count:
        choice = int(np.argmax(nearest))
        picked.append(choice)
        nearest = np.minimum(nearest, 1.0 - (signatures == signatures[choice]).mean(axis=1))
        nearest[picked] = -1.0
    return picked


@dataclass(frozen=True)
class Balance(Stage):
    name = "balance"
    balance: BalanceConfig
    dedup: DedupConfig  # MinHash shingles and permutations for the diversity pick, as dedup measures similarity
    seed: int

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        settings = self.balance
        by_cell: dict[Cell, list[Problem]] = defaultdict(list)
        for p in problems:
            by_cell[cell_of(p, settings.cells)].append(p)
        supply = {cell: len(items) for cell, items in by_cell.items()}
        target = settings.size if settings.size is not None else len(problems)
        quotas = water_fill(supply, target)
        even_share = target / max(len(supply), 1)
        chosen: set[str] = set()
        for cell, items in sorted(by_cell.items()):
            chosen.update(p.id for p in self._pick(cell, items, quotas[cell]))
        decisions, kept = [], []
        for p in problems:
            cell = cell_of(p, settings.cells)
            facts = {"cell": list(cell), "quota": quotas[cell], "supply": supply[cell]}
            if p.id in chosen:
                kept.append(p)
                decisions.append(Decision(p.id, "kept", "selected", facts))
            else:
                decisions.append(Decision(p.id, "dropped", "over_quota", facts))
        cells = {
            "/".join(cell): {"supply": supply[cell], "quota": quotas[cell], "short": supply[cell] < even_share - 1}
            for cell in sorted(supply)
        }
        short = [name for name, c in cells.items() if c["short"]]
        return StageResult(
            kept,
            decisions,
            facts={"target": target, "dimensions": list(settings.cells), "cells": cells, "short_cells": short},
        )

    def _pick(self, cell: Cell, items: list[Problem], quota: int) -> list[Problem]:
        if quota >= len(items):
            return items
        seed = int(hashlib.sha256(f"{self.seed}/{'/'.join(cell)}".encode()).hexdigest()[:8], 16)
        rng = random.Random(seed)
        if self.balance.diversity == "none":
            return rng.sample(items, quota)
        from datasketch import MinHash

        hashes = MinHash.bulk(
            [list(shingles(dedup_key(p.problem), self.dedup.shingle_size)) for p in items],
            num_perm=self.dedup.num_perm,
            seed=self.seed + 1,
        )
        signatures = np.stack([h.hashvalues for h in hashes])
        return [items[i] for i in farthest_first(signatures, quota, rng)]
