"""The curation stage contract and the runner that makes stages resumable.

A stage is a small named unit: it declares the Ray resources one of its workers reserves and the settings
that change its output, takes the problems the previous stage kept, and returns what it keeps plus one
decision per problem it saw. The runner materialises that under `curate/<stage>/` (problems.parquet,
decisions.parquet, manifest.json), quarantines bad rows to `curate/rejected/<stage>.jsonl`, rebuilds the
ledger, and on a re-run skips a stage whose manifest says complete for the same settings.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.config import RunConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.problem_table import read_problems, write_problems
from limo_ray.errors import LimoError
from limo_ray.records import BadRow, Problem, write_rejected
from limo_ray.runfolder import Manifest, atomic_open, provenance

DecisionKind = Literal["kept", "dropped"]
DECISION_SCHEMA = pa.schema(
    [("problem_id", pa.string()), ("decision", pa.string()), ("reason", pa.string()), ("facts", pa.string())]
)


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage reserves from Ray (0 CPUs: the stage runs in the driver)."""

    cpus: float = 0.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Decision:
    problem_id: str
    decision: DecisionKind
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, str]:
        return {
            "problem_id": self.problem_id,
            "decision": self.decision,
            "reason": self.reason,
            "facts": json.dumps(self.facts, sort_keys=True, ensure_ascii=False),
        }


@dataclass
class StageResult:
    kept: list[Problem]
    decisions: list[Decision]
    rejected: list[BadRow] = field(default_factory=list)
    tokens: int = 0
    # Stage-level facts for the manifest (e.g. which benchmarks were checked).
    facts: dict[str, Any] = field(default_factory=dict)


class Stage(ABC):
    name: ClassVar[str]
    resources: ClassVar[Resources] = Resources()

    def config_view(self, config: RunConfig) -> dict[str, Any]:
        """The settings this stage's output depends on (hashed into its manifest)."""
        return {}

    @abstractmethod
    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult: ...


@dataclass(frozen=True)
class StageOutcome:
    name: str
    kept: list[Problem]
    config_hash: str
    skipped: bool
    manifest: Manifest


def stage_hash(upstream_hash: str, stage: Stage, config: RunConfig) -> str:
    """Chains the upstream hash: changing any earlier stage's settings invalidates every later stage."""
    view = json.dumps(
        {"stage": stage.name, "upstream": upstream_hash, "settings": stage.config_view(config)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(view.encode()).hexdigest()[:16]


def run_stage(ctx: CurateContext, stage: Stage, problems: Sequence[Problem], upstream_hash: str) -> StageOutcome:
    folder = ctx.stage_dir(stage.name)
    config_hash = stage_hash(upstream_hash, stage, ctx.config)
    existing = Manifest.read(folder)
    if existing is not None and existing.complete:
        if existing.config_hash != config_hash:
            raise LimoError(
                f"{folder} was completed with other settings (hash {existing.config_hash}, now {config_hash}): "
                "delete that folder (and later stages') to redo it"
            )
        ctx.log(f"[curate] {stage.name}: complete, skipped ({existing.rows_in} in -> {existing.rows_out} kept)")
        return StageOutcome(stage.name, read_problems(folder / "problems.parquet"), config_hash, True, existing)

    ctx.log(f"[curate] {stage.name}: {len(problems)} problems in")
    start = time.perf_counter()
    result = stage.run(ctx, problems)
    seconds = time.perf_counter() - start
    write_problems(result.kept, folder / "problems.parquet")
    write_decisions(result.decisions, folder / "decisions.parquet")
    if result.rejected:
        write_rejected(result.rejected, ctx.curate_dir / "rejected" / f"{stage.name}.jsonl")
    rows_in = len(problems) if stage.name != "ingest" else len(result.kept) + len(result.rejected)
    manifest = Manifest(
        stage=stage.name,
        inputs=[str(p) for p in _inputs(ctx, stage)],
        rows_in=rows_in,
        rows_out=len(result.kept),
        rows_rejected=len(result.rejected),
        config_hash=config_hash,
        seconds=round(seconds, 3),
        complete=True,
        produced_by=provenance(),
        extra={"tokens": result.tokens, "dropped": rows_in - len(result.kept) - len(result.rejected), **result.facts},
    )
    manifest.write(folder)
    ctx.metrics.rows(stage.name, "in", rows_in)
    ctx.metrics.rows(stage.name, "kept", len(result.kept))
    ctx.metrics.rows(stage.name, "dropped", manifest.extra["dropped"])
    ctx.metrics.rows(stage.name, "rejected", len(result.rejected))
    ctx.log(
        f"[curate] {stage.name}: {rows_in} in -> {len(result.kept)} kept, "
        f"{manifest.extra['dropped']} dropped, {len(result.rejected)} rejected, "
        f"{result.tokens} tokens, {seconds:.1f}s"
    )
    return StageOutcome(stage.name, result.kept, config_hash, False, manifest)


def _inputs(ctx: CurateContext, stage: Stage) -> list[str]:
    if stage.name == "ingest":
        return list(ctx.config.curate.pool.sources)
    return []


def write_decisions(decisions: Sequence[Decision], path: Path) -> Path:
    with atomic_open(path) as handle:
        pq.write_table(pa.Table.from_pylist([d.to_row() for d in decisions], schema=DECISION_SCHEMA), handle)
    return path


def read_decisions(path: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(path, schema=DECISION_SCHEMA).to_pylist()
    return [{**row, "facts": json.loads(row["facts"])} for row in rows]
