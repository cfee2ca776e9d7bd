"""select: the best chain per problem by quality score, then the top `select.size` problems by that score.

Ties are broken so the choice is reproducible: higher score, then fewer tokens (the same quality said more
briefly), then chain model order in the config, then attempt index; problems tie-break on id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.curate.context import CurateContext
from limo_ray.curate.quality_stage import SCORED_CHAINS, read_scored_chains
from limo_ray.curate.stage import Decision, SideFile, Stage, StageResult
from limo_ray.records import Problem
from limo_ray.runfolder import write_json_atomic

# {problem id: the chosen chain's row without its text}: what export writes out.
SELECTED = SideFile("select", "selected.json")


def best_chains(scored: Sequence[dict[str, Any]], model_order: Sequence[str]) -> dict[str, dict[str, Any]]:
    rank = {m: i for i, m in enumerate(model_order)}

    def key(row: dict[str, Any]) -> tuple[float, int, int, int]:
        return (-row["score"], row["num_tokens"], rank.get(row["model"], len(rank)), row["attempt_index"])

    best: dict[str, dict[str, Any]] = {}
    for row in scored:
        current = best.get(row["problem_id"])
        if current is None or key(row) < key(current):
            best[row["problem_id"]] = row
    return best


def write_selected(curate_dir: Path, best: dict[str, dict[str, Any]], kept: Sequence[Problem]) -> None:
    write_json_atomic(
        SELECTED.path(curate_dir), {p.id: {k: v for k, v in best[p.id].items() if k != "response"} for p in kept}
    )


@dataclass(frozen=True)
class Select(Stage):
    name = "select"
    reads = (SCORED_CHAINS,)
    writes = (SELECTED,)
    size: int
    models: tuple[str, ...]  # chain models in the config's order: the tie-break

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        size = self.size
        best = best_chains(read_scored_chains(ctx.curate_dir), self.models)
        ranked = sorted((p for p in problems if p.id in best), key=lambda p: (-best[p.id]["score"], p.id))
        chosen = {p.id for p in ranked[:size]}
        kept, decisions = [], []
        for rank, p in enumerate(ranked, start=1):
            chain = best[p.id]
            facts = {
                "rank": rank,
                "model": chain["model"],
                "attempt_index": chain["attempt_index"],
                "score": chain["score"],
                "level": chain["level"],
            }
            if p.id in chosen:
                kept.append(p)
                decisions.append(Decision(p.id, "kept", "top_n", facts))
            else:
                decisions.append(Decision(p.id, "dropped", "below_top_n", facts))
        write_selected(ctx.curate_dir, best, kept)
        return StageResult(kept, decisions, facts={"size": size, "candidates": len(ranked)})
