"""The curation stage contract and the runner that makes stages resumable.

A stage is a small named unit, built from its settings (a frozen dataclass: `Dedup(config.curate.dedup,
seed=config.seed)`). Its fields are the whole of what it reads, so they are what its cache key hashes: a
setting cannot change the output without changing the key. It declares the files and models it reads, the
side files it writes for later stages and those of earlier stages it reads, and what one of its engine workers
reserves from Ray. It takes the problems the previous stage kept and returns what it keeps plus one decision
per problem it saw. The runner materialises that under `curate/<stage>/` (problems.parquet, decisions.parquet,
manifest.json), quarantines bad rows to `curate/rejected/<stage>.jsonl`, and on a re-run skips a stage whose
manifest says complete for the same key.
"""

from __future__ import annotations

import dataclasses
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from limo_ray.curate.context import CurateContext
from limo_ray.curate.problem_table import read_problems, write_problems
from limo_ray.errors import LimoError
from limo_ray.records import BadRow, Problem, write_rejected
from limo_ray.runfolder import Manifest, atomic_open, changed_settings, provenance, settings_key

DecisionKind = Literal["kept", "dropped"]
DECISION_SCHEMA = pa.schema(
    [("problem_id", pa.string()), ("decision", pa.string()), ("reason", pa.string()), ("facts", pa.string())]
)


@dataclass(frozen=True)
class SideFile:
    """A file (or folder) a stage writes in its own folder for later stages, beside problems and decisions."""

    stage: str
    name: str
    # Read if present (e.g. the filters' decisions, which the random control has not got).
    optional: bool = False

    def path(self, curate_dir: Path) -> Path:
        return curate_dir / self.stage / self.name


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
    # Rows the stage read, if not the problems it was given (ingest reads files: kept + quarantined).
    rows_in: int | None = None
    # Stage-level facts for the manifest (e.g. which benchmarks were checked).
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage(ABC):
    """Subclasses are frozen dataclasses whose fields are their settings."""

    name: ClassVar[str]
    # Side files of earlier stages this stage reads, and the ones it writes (checked and recorded by the runner).
    reads: ClassVar[tuple[SideFile, ...]] = ()
    writes: ClassVar[tuple[SideFile, ...]] = ()

    def settings(self) -> dict[str, Any]:
        """What the output depends on: every field the stage was built with (hashed into its manifest)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def inputs(self) -> list[str]:
        """Files, URIs and model folders outside the run folder that the stage reads."""
        return []

    def resources(self) -> list[dict[str, float]]:
        """The Ray bundles one of the stage's workers reserves; none when it runs in the driver."""
        return []

    @abstractmethod
    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult: ...


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class StageOutcome:
    name: str
    kept: list[Problem]
    config_hash: str
    skipped: bool
    manifest: Manifest


# The start of the stage-key chain; stage settings carry everything else (paths name the toy world's hash).
ROOT_KEY = "limo-ray/curate/v2"


def stage_hash(upstream_hash: str, stage: Stage) -> str:
    """Chains the upstream hash: changing any earlier stage's settings invalidates every later stage."""
    return settings_key({"stage": stage.name, "upstream": upstream_hash, "settings": stage.settings()})


def run_stage(ctx: CurateContext, stage: Stage, problems: Sequence[Problem], upstream_hash: str) -> StageOutcome:
    folder = ctx.stage_dir(stage.name)
    config_hash = stage_hash(upstream_hash, stage)
    existing = Manifest.read(folder)
    if existing is not None and existing.complete:
        if existing.config_hash != config_hash:
            changed = changed_settings(existing.extra.get("settings", {}), stage.settings())
            what = f"changed: {', '.join(changed)}" if changed else "an earlier stage's settings changed"
            raise LimoError(
                f"{folder} was completed with other settings ({what}): delete that folder (and later stages') to "
                "redo it, or use a new --run-dir"
            )
        ctx.log(f"[curate] {stage.name}: complete, skipped ({existing.rows_in} in -> {existing.rows_out} kept)")
        return StageOutcome(stage.name, read_problems(folder / "problems.parquet"), config_hash, True, existing)

    missing = [side for side in stage.reads if not side.optional and not side.path(ctx.curate_dir).exists()]
    if missing:
        raise LimoError(
            f"{stage.name} reads {', '.join(str(m.path(ctx.curate_dir)) for m in missing)}, which is not there: "
            "re-run the stages before it"
        )
    # The first stage of the chain reads its inputs (files), not the problems of a stage before it.
    intake = f"{len(stage.inputs())} source(s)" if upstream_hash == ROOT_KEY else f"{len(problems)} problems"
    ctx.log(f"[curate] {stage.name}: {intake} in")
    start = time.perf_counter()
    result = stage.run(ctx, problems)
    seconds = time.perf_counter() - start
    write_problems(result.kept, folder / "problems.parquet")
    write_decisions(result.decisions, folder / "decisions.parquet")
    if result.rejected:
        write_rejected(result.rejected, ctx.curate_dir / "rejected" / f"{stage.name}.jsonl")
    rows_in = result.rows_in if result.rows_in is not None else len(problems)
    manifest = Manifest(
        stage=stage.name,
        inputs=[*stage.inputs(), *(str(side.path(ctx.curate_dir)) for side in stage.reads)],
        rows_in=rows_in,
        rows_out=len(result.kept),
        rows_rejected=len(result.rejected),
        config_hash=config_hash,
        seconds=round(seconds, 3),
        complete=True,
        produced_by=provenance(),
        extra={
            "tokens": result.tokens,
            "dropped": rows_in - len(result.kept) - len(result.rejected),
            "settings": stage.settings(),
            "resources": stage.resources(),
            "writes": [str(side.path(ctx.curate_dir)) for side in stage.writes],
            **result.facts,
        },
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


def write_decisions(decisions: Sequence[Decision], path: Path) -> Path:
    with atomic_open(path) as handle:
        pq.write_table(pa.Table.from_pylist([d.to_row() for d in decisions], schema=DECISION_SCHEMA), handle)
    return path


def read_decisions(path: Path) -> list[dict[str, Any]]:
    rows = pq.read_table(path, schema=DECISION_SCHEMA).to_pylist()
    return [{**row, "facts": json.loads(row["facts"])} for row in rows]
