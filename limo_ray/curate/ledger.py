"""`curate/ledger.parquet`: one row per ingested problem, with every stage's decision and the facts behind it.

Rebuilt from the stages' `decisions.parquet` after each stage completes, so it is always consistent with what
is on disk: a column group per stage (`<stage>`, `<stage>_reason`, `<stage>_facts`) in pipeline order; a
problem a stage never saw (dropped earlier) has nulls there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.curate.problem_table import read_problems
from limo_ray.curate.stage import DECISION_SCHEMA
from limo_ray.runfolder import atomic_open

LEDGER_FILE = "ledger.parquet"


def rebuild_ledger(curate_dir: Path, stage_names: Sequence[str]) -> Path | None:
    """Join every completed stage's decisions onto the ingested problems; None before ingest completes."""
    ingest_problems = curate_dir / "ingest" / "problems.parquet"
    if not ingest_problems.is_file():
        return None
    problems = read_problems(ingest_problems)
    columns: dict[str, list[object]] = {
        "problem_id": [p.id for p in problems],
        "source": [p.source for p in problems],
        "source_line": [p.source_line for p in problems],
        "domain": [p.domain for p in problems],
        "difficulty": [p.difficulty for p in problems],
        "answer": [p.answer for p in problems],
    }
    for name in stage_names:
        path = curate_dir / name / "decisions.parquet"
        if not path.is_file():
            continue
        by_id = {row["problem_id"]: row for row in pq.read_table(path, schema=DECISION_SCHEMA).to_pylist()}
        for suffix, key in (("", "decision"), ("_reason", "reason"), ("_facts", "facts")):
            columns[f"{name}{suffix}"] = [by_id.get(pid, {}).get(key) for pid in columns["problem_id"]]
    table = pa.table(columns)
    target = curate_dir / LEDGER_FILE
    with atomic_open(target) as handle:
        pq.write_table(table, handle)
    return target


def read_ledger(curate_dir: Path) -> list[dict[str, object]]:
    """The ledger's rows, with each stage's facts decoded from JSON."""
    import json

    rows = pq.read_table(curate_dir / LEDGER_FILE).to_pylist()
    for row in rows:
        for key, value in row.items():
            if key.endswith("_facts") and isinstance(value, str):
                row[key] = json.loads(value)
    return rows
