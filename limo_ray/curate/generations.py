"""The generation cache: every sampled attempt, stored as soon as it is graded, keyed so none is drawn twice.

A key is a hash of (prompt, model, sampling params, engine seed, attempt index). Attempts are appended in
small parquet parts (each written atomically), so a run killed mid-stage keeps everything it had finished and
a re-run draws only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.runfolder import atomic_open

ATTEMPT_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("problem_id", pa.string()),
        ("attempt_index", pa.int64()),
        ("round", pa.int64()),
        ("model", pa.string()),
        ("response", pa.string()),
        ("num_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("correct", pa.bool_()),
        ("extracted", pa.string()),
        ("grade_reason", pa.string()),
        ("error", pa.string()),
    ]
)


def attempt_key(prompt: str, model: str, sampling: Mapping[str, Any], seed: int, attempt_index: int) -> str:
    params = {k: v for k, v in sampling.items() if k != "n"}
    blob = json.dumps([prompt, model, params, seed, attempt_index], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def stored_attempts(folder: Path) -> list[dict[str, Any]]:
    """Every row of every part, in write order, duplicates included (audits count on that)."""
    if not folder.is_dir():
        return []
    parts = sorted(folder.glob("part-*.parquet"))
    return [row for part in parts for row in pq.read_table(part, schema=ATTEMPT_SCHEMA).to_pylist()]


class GenerationStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[str, dict[str, Any]] = {row["key"]: row for row in stored_attempts(folder)}
        self._parts = len(list(folder.glob("part-*.parquet"))) if folder.is_dir() else 0

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        new = [dict(r) for r in rows if r["key"] not in self.rows]
        if not new:
            return 0
        self._parts += 1
        # pid + time: two writers never collide on a name, and sorted order stays chronological.
        name = f"part-{time.time_ns():020d}-{os.getpid()}.parquet"
        with atomic_open(self.folder / name) as handle:
            pq.write_table(pa.Table.from_pylist(new, schema=ATTEMPT_SCHEMA), handle)
        for row in new:
            self.rows[row["key"]] = row
        return len(new)
