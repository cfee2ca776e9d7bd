"""Read problem files (local, S3, GCS) in the dataset formats LIMO works with, into `Problem` rows.

Every input row ends up in exactly one place: a `Problem`, or a `BadRow` that says why it was not one.
Nothing is dropped silently, so ``rows_in == len(problems) + len(rejected)`` for every load and a user can
open the rejected file to see what went wrong in which line.

File-level problems (no file matches a pattern, unknown extension, a ``.json`` file that is not JSON,
an unreachable bucket) are `LimoError`s: they are the user's to fix and no row could be read anyway.
Row-level problems (bad JSON on one line, a record without problem text or gold answer) are `BadRow`s.

The three parts a load goes through each have their module: `sources` (which files: paths, globs, URIs),
`containers` (a file's bytes to numbered records: jsonl, json, parquet) and `formats` (a record's fields
to a Problem: see `FORMATS` and `detect_format`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from limo_ray.records.containers import Container, container_of, read_rows
from limo_ray.records.formats import FieldMap, check_format, to_problem
from limo_ray.records.schema import BadRow, Problem
from limo_ray.records.sources import display_source, expand_sources, filesystem, split_query

__all__ = ["LoadResult", "iter_records", "load_problems", "write_rejected"]


@dataclass
class LoadResult:
    """Everything one load read: kept problems, rejected rows, and the count that reconciles them."""

    problems: list[Problem] = field(default_factory=list)
    rejected: list[BadRow] = field(default_factory=list)
    rows_in: int = 0
    sources: list[str] = field(default_factory=list)


def iter_records(
    uri: str,
    fmt: str = "auto",
    fields: FieldMap | Mapping[str, str | None] | None = None,
) -> Iterator[Problem | BadRow]:
    """Stream one file (a path or URI, not a glob) as Problems and BadRows, in file order.

    The format, field map and file type are checked now (LimoError); the file is read as you iterate.
    """
    field_map = FieldMap.coerce(fields)
    check_format(fmt)
    source = display_source(uri)
    container = container_of(split_query(uri)[0], source)
    return _mapped(uri, container, fmt, field_map, source)


def _mapped(
    uri: str, container: Container, fmt: str, fields: FieldMap | None, source: str
) -> Iterator[Problem | BadRow]:
    # A generator, so the file is opened on the first row asked for, not when iter_records is called.
    fs, path = filesystem(uri)
    for line, row in read_rows(container, fs, path, source):
        yield (row if isinstance(row, BadRow) else to_problem(row, fmt=fmt, fields=fields, source=source, line=line))


def load_problems(
    patterns: str | Iterable[str],
    fmt: str = "auto",
    fields: FieldMap | Mapping[str, str | None] | None = None,
) -> LoadResult:
    """Expand ``patterns`` and read every file into one LoadResult (see `expand_sources`, `to_problem`)."""
    field_map = FieldMap.coerce(fields)
    check_format(fmt)
    sources = expand_sources(patterns)
    result = LoadResult(sources=[display_source(s) for s in sources])
    for uri in sources:
        for item in iter_records(uri, fmt, field_map):
            result.rows_in += 1
            if isinstance(item, Problem):
                result.problems.append(item)
            else:
                result.rejected.append(item)
    return result


def write_rejected(rejected: Iterable[BadRow], path: str | os.PathLike[str]) -> Path:
    """Write BadRows as jsonl (keys reason, source, line, raw) atomically: readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for row in rejected:
                out.write(json.dumps(row.to_row(), ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
