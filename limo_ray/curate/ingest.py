"""ingest: pool files, globs and URIs -> Problems; rows that cannot be problems go to the quarantine.

Ids must be unique within a pool (every later decision is keyed by id), but sources reuse ids (AMC's `id: 0`,
GSM8K's `idx: 0`). The first problem keeps its id; a later one with the same id gets `~2`, `~3`, ... in pool
order, which is stable because sources are read in sorted order. The original id stays in its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from limo_ray.config import PoolConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.errors import LimoError
from limo_ray.records import BadRow, Problem, expand_sources, iter_records


@dataclass(frozen=True)
class Ingest(Stage):
    name = "ingest"
    pool: PoolConfig

    def inputs(self) -> list[str]:
        return list(self.pool.sources)

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        pool = self.pool
        if not pool.sources:
            raise LimoError("curate.pool.sources is empty: list pool files in the config or pass --pool FILE")
        uris = expand_sources(list(pool.sources))
        fields = {f"{k}_field": v for k, v in pool.fields.model_dump().items() if v is not None} or None
        kept: list[Problem] = []
        rejected: list[BadRow] = []
        seen: dict[str, int] = {}
        for uri in uris:
            for item in iter_records(uri, pool.format, fields):
                if isinstance(item, BadRow):
                    rejected.append(item)
                    continue
                kept.append(_unique(item, seen))
        decisions = [Decision(p.id, "kept", "ingested", {"source": p.source, "line": p.source_line}) for p in kept]
        return StageResult(kept, decisions, rejected, rows_in=len(kept) + len(rejected), facts={"files": uris})


def _unique(problem: Problem, seen: dict[str, int]) -> Problem:
    count = seen.get(problem.id, 0) + 1
    seen[problem.id] = count
    if count == 1:
        return problem
    renamed = f"{problem.id}~{count}"
    seen[renamed] = 1
    return problem.model_copy(update={"id": renamed, "metadata": {**problem.metadata, "original_id": problem.id}})
