"""export: the selected problems with their chosen chains as the LIMO-format dataset, and the data card.

`curate/dataset.jsonl` and `curate/dataset.parquet` hold one `Sample` per problem (`id, system, problem,
response, answer, provenance`); `provenance` carries the ledger's facts (source row, weak/strong attempts and
successes, the chosen chain's model, score and level). `datasets.load_dataset("json", data_files=...)` reads
the jsonl. The data card (`curate/README.md` + plots) is written beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.curate.card import write_card
from limo_ray.curate.context import CurateContext
from limo_ray.curate.quality_stage import SCORED_CHAINS, read_scored_chains
from limo_ray.curate.select import SELECTED
from limo_ray.curate.stage import Decision, SideFile, Stage, StageResult, read_decisions
from limo_ray.records import Problem, Sample
from limo_ray.runfolder import atomic_open, write_jsonl_atomic

DATASET_JSONL = "dataset.jsonl"
DATASET_PARQUET = "dataset.parquet"
# The filters' per-problem facts go into each sample's provenance; the random control has no filters.
FILTER_DECISIONS = (
    SideFile("weak_filter", "decisions.parquet", optional=True),
    SideFile("strong_filter", "decisions.parquet", optional=True),
)


@dataclass(frozen=True)
class Export(Stage):
    name = "export"
    reads = (SELECTED, SCORED_CHAINS, *FILTER_DECISIONS)
    system: str  # the system prompt every sample carries

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        selected = json.loads(SELECTED.path(ctx.curate_dir).read_text())
        responses = {
            (r["problem_id"], r["model"], r["attempt_index"]): r["response"] for r in read_scored_chains(ctx.curate_dir)
        }
        facts = {side.stage: _facts_by_problem(side.path(ctx.curate_dir)) for side in FILTER_DECISIONS}
        samples = []
        for p in problems:
            chain = selected[p.id]
            response = responses[(p.id, chain["model"], chain["attempt_index"])]
            weak, strong = facts["weak_filter"].get(p.id), facts["strong_filter"].get(p.id)
            samples.append(chain_sample(p, chain, response, self.system, weak, strong))
        rows = [s.to_row() for s in samples]
        write_jsonl_atomic(ctx.curate_dir / DATASET_JSONL, rows)
        table = pa.Table.from_pylist([{**r, "provenance": json.dumps(r["provenance"])} for r in rows])
        with atomic_open(ctx.curate_dir / DATASET_PARQUET) as handle:
            pq.write_table(table, handle)
        decisions = [Decision(s.id, "kept", "exported") for s in samples]
        write_card(ctx, samples)
        return StageResult(list(problems), decisions, facts={"samples": len(samples)})


def chain_sample(
    problem: Problem,
    chain: Mapping[str, Any],
    response: str,
    system: str,
    weak: dict[str, Any] | None = None,
    strong: dict[str, Any] | None = None,
) -> Sample:
    """One LIMO-format sample: the problem with a scored chain, and where both came from (`weak`/`strong`: the
    filters' decision facts for the problem, if it met them)."""
    provenance = {
        "source": problem.source,
        "source_line": problem.source_line,
        "source_id": problem.metadata.get("original_id", problem.id),
        "domain": problem.domain,
        "difficulty": problem.difficulty,
        "weak": _attempt_summary(weak),
        "strong": _attempt_summary(strong),
        "chain": {k: chain[k] for k in ("model", "attempt_index", "score", "level", "num_tokens", "words")},
    }
    return Sample(
        id=problem.id,
        system=system,
        problem=problem.problem,
        response=response,
        answer=problem.answer,
        provenance=provenance,
    )


def _facts_by_problem(path: Path) -> dict[str, dict[str, Any]]:
    return {d["problem_id"]: d["facts"] for d in read_decisions(path)} if path.is_file() else {}


def _attempt_summary(facts: dict[str, Any] | None) -> dict[str, Any] | None:
    if not facts:
        return None
    return {"model": facts.get("model"), "attempts": facts.get("attempts"), "successes": facts.get("successes")}
