"""`eval/samples.jsonl`: one line per (checkpoint, benchmark, item, sample), appended as answers arrive.

This file is the evaluation's cache and its record. Each line carries a `key`, a hash of everything that
decides the answer (checkpoint name, prompt, decoding, token limit, sample index): a re-run reuses a line only
when its key matches, so changing the prompt or the decoding re-asks rather than mixing old and new answers.
Lines are appended and flushed one by one; a run killed mid-write leaves at most one torn last line, which is
cut off when the file is next opened. A later line with the same key wins (a re-graded sample).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

SAMPLES_FILE = "samples.jsonl"


def sample_key(
    checkpoint: str,
    benchmark: str,
    item: str,
    sample: int,
    messages: Sequence[Mapping[str, str]],
    temperature: float,
    top_p: float,
    max_tokens: int,
) -> str:
    blob = json.dumps(
        {
            "checkpoint": checkpoint,
            "benchmark": benchmark,
            "item": item,
            "sample": sample,
            "messages": list(messages),
            "temperature": temperature,
            "top_p": top_p,
            "max_tokens": max_tokens,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


class SampleStore:
    """The rows of samples.jsonl by key, and an append handle that flushes every write."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self._cut_torn_tail()
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        self.skipped_lines += 1
                        continue
                    if isinstance(row, dict) and isinstance(row.get("key"), str):
                        self.rows[row["key"]] = row
                    else:
                        self.skipped_lines += 1
        self._handle = self.path.open("a", encoding="utf-8")

    def _cut_torn_tail(self) -> None:
        """Drop a last line with no newline (a write cut short by a kill): it would glue onto the next append."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            position = size
            while position > 0:
                step = min(4096, position)
                handle.seek(position - step)
                chunk = handle.read(step)
                newline = chunk.rfind(b"\n")
                if newline != -1:
                    end = position - step + newline + 1
                    if end != size:
                        handle.truncate(end)
                    return
                position -= step
            handle.truncate(0)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        lines = []
        for row in rows:
            self.rows[row["key"]] = dict(row)
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        # One write per request's rows, then flush: a kill loses at most the answer in flight.
        self._handle.write("".join(lines))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
