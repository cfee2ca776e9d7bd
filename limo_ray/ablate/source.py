"""What a study reads from a finished curation: the pool, the ledger, the scored chains and the curated set.

The run folder of `limo run` or `limo curate` holds them under `curate/`; `read_curation` loads them once, and
the arms (`arms.py`) are pure functions of what it returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.curate.export import DATASET_JSONL
from limo_ray.curate.ledger import LEDGER_FILE, read_ledger
from limo_ray.curate.problem_table import read_problems
from limo_ray.curate.quality_stage import SCORED_CHAINS, read_scored_chains
from limo_ray.errors import LimoError
from limo_ray.records import Problem, Sample

LedgerRow = Mapping[str, Any]
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Curation:
    """A finished curation, as the arms need it."""

    curate_dir: Path
    problems: Mapping[str, Problem]  # every ingested problem, by id
    ledger: Sequence[LedgerRow]  # one row per ingested problem: every stage's decision and facts
    scored: Sequence[Mapping[str, Any]]  # quality/chains.parquet: every correct chain with its score and level
    curated: Sequence[Sample]  # dataset.jsonl, in its order


def read_curation(curate_dir: Path) -> Curation:
    """Load a finished curation; a missing file is an error that says which command makes it."""
    needed = [curate_dir / "ingest" / "problems.parquet", curate_dir / LEDGER_FILE, SCORED_CHAINS.path(curate_dir)]
    needed.append(curate_dir / DATASET_JSONL)
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise LimoError(
            f"no finished curation in {curate_dir} ({', '.join(missing)} missing): run `limo run` or `limo curate` "
            "on that run folder first"
        )
    problems = {p.id: p for p in read_problems(curate_dir / "ingest" / "problems.parquet")}
    lines = (curate_dir / DATASET_JSONL).read_text(encoding="utf-8").splitlines()
    curated = [Sample.model_validate(json.loads(line)) for line in lines if line.strip()]
    return Curation(curate_dir, problems, read_ledger(curate_dir), read_scored_chains(curate_dir), curated)


def kept_by(ledger: Sequence[LedgerRow], stage: str) -> list[str]:
    """Ids of the problems `stage` kept (`decontaminate`: the pool after dedup and decontamination)."""
    return [str(row["problem_id"]) for row in ledger if row.get(stage) == "kept"]


def filter_facts(row: LedgerRow, stage: str) -> dict[str, Any] | None:
    facts = row.get(f"{stage}_facts")
    return facts if isinstance(facts, dict) else None


def strong_solve_rate(row: LedgerRow) -> float | None:
    """The strong filter's successes / attempts for a problem it measured; None where it never sampled it."""
    facts = filter_facts(row, "strong_filter")
    if row.get("strong_filter") is None or not facts or not facts.get("attempts"):
        return None
    if row.get("strong_filter_reason") == "engine_error":
        return None
    return float(facts["successes"]) / float(facts["attempts"])


def source_level(label: object) -> int | None:
    """The number in a source's level label: "Level 3" (MATH), "3" (the toy world); None when there is none."""
    if label is None:
        return None
    found = _NUMBER.search(str(label))
    return int(found.group()) if found else None
