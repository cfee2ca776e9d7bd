"""quality: score every correct chain the chains stage asked for (`curate/chains/drawn.json`) with the rule scorer.

Writes `curate/quality/chains.parquet`: one row per correct chain with its score, level L1-L5 and features.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.config import QualityConfig
from limo_ray.curate.chains import CHAIN_GENERATIONS, DRAWN_CHAINS, drawn_chain_rows
from limo_ray.curate.context import CurateContext
from limo_ray.curate.quality import score_chain
from limo_ray.curate.stage import Decision, SideFile, Stage, StageResult
from limo_ray.records import Problem
from limo_ray.runfolder import atomic_open

SCORED_CHAINS = SideFile("quality", "chains.parquet")
SCORED_SCHEMA = pa.schema(
    [
        ("problem_id", pa.string()),
        ("model", pa.string()),
        ("attempt_index", pa.int64()),
        ("response", pa.string()),
        ("num_tokens", pa.int64()),
        ("words", pa.int64()),
        ("score", pa.float64()),
        ("level", pa.int64()),
        ("features", pa.string()),
    ]
)


def read_scored_chains(curate_dir: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(SCORED_CHAINS.path(curate_dir), schema=SCORED_SCHEMA).to_pylist()
    return [{**r, "features": json.loads(r["features"])} for r in rows]


@dataclass(frozen=True)
class Quality(Stage):
    name = "quality"
    reads = (CHAIN_GENERATIONS, DRAWN_CHAINS)
    writes = (SCORED_CHAINS,)
    quality: QualityConfig
    models: tuple[str, ...]  # the chain models whose chains are scored

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        settings = self.quality
        wanted = {p.id for p in problems}
        scored: list[dict[str, Any]] = []
        for model in self.models:
            for row in drawn_chain_rows(ctx.curate_dir, model):
                if row["problem_id"] not in wanted or not row["correct"] or row["error"]:
                    continue
                quality = score_chain(row["response"], settings.weights, settings.reference_length)
                scored.append(
                    {
                        "problem_id": row["problem_id"],
                        "model": model,
                        "attempt_index": row["attempt_index"],
                        "response": row["response"],
                        "num_tokens": row["num_tokens"],
                        "words": quality.words,
                        "score": quality.score,
                        "level": quality.level,
                        "features": json.dumps(quality.features, sort_keys=True),
                    }
                )
        scored.sort(key=lambda r: (r["problem_id"], r["model"], r["attempt_index"]))
        with atomic_open(SCORED_CHAINS.path(ctx.curate_dir)) as handle:
            pq.write_table(pa.Table.from_pylist(scored, schema=SCORED_SCHEMA), handle)
        best: dict[str, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        for row in scored:
            counts[row["problem_id"]] = counts.get(row["problem_id"], 0) + 1
            if row["problem_id"] not in best or row["score"] > best[row["problem_id"]]["score"]:
                best[row["problem_id"]] = row
        decisions, kept = [], []
        for p in problems:
            if p.id not in best:
                decisions.append(Decision(p.id, "dropped", "no_correct_chain"))
                continue
            kept.append(p)
            decisions.append(
                Decision(
                    p.id,
                    "kept",
                    "scored",
                    {"chains": counts[p.id], "best_score": best[p.id]["score"], "best_level": best[p.id]["level"]},
                )
            )
        return StageResult(kept, decisions, facts={"scored_chains": len(scored)})
