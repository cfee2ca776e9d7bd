"""Problems <-> parquet: the table each curation stage writes and the next one reads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.records import Problem
from limo_ray.runfolder import atomic_open

PROBLEM_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("solution", pa.string()),
        ("domain", pa.string()),
        ("difficulty", pa.string()),
        ("source", pa.string()),
        ("source_line", pa.int64()),
        ("source_format", pa.string()),
        # A JSON object: the sources' metadata keys differ from file to file.
        ("metadata", pa.string()),
    ]
)


def problems_to_table(problems: Iterable[Problem]) -> pa.Table:
    rows = [{**p.to_row(), "metadata": json.dumps(p.metadata, sort_keys=True)} for p in problems]
    return pa.Table.from_pylist(rows, schema=PROBLEM_SCHEMA)


def table_to_problems(table: pa.Table) -> list[Problem]:
    return [Problem(**{**row, "metadata": json.loads(row["metadata"] or "{}")}) for row in table.to_pylist()]


def write_problems(problems: Iterable[Problem], path: Path) -> Path:
    with atomic_open(path) as handle:
        pq.write_table(problems_to_table(problems), handle)
    return path


def read_problems(path: Path) -> list[Problem]:
    return table_to_problems(pq.read_table(path, schema=PROBLEM_SCHEMA))
