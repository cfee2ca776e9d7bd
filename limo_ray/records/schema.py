"""Row schemas shared by every stage: Problem, Attempt, Chain, Sample, and the quarantine's BadRow.

Rows travel through Ray Data as plain dicts; these models are the contract for what a dict holds
(`to_row()` / `model_validate(row)`). Problem ids are stable: the source's own id when it has one,
else a hash of the normalised problem text, so the same problem gets the same id in every run.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Canonical form used for ids and exact dedup: NFKC, lower case, collapsed whitespace."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


def text_id(text: str) -> str:
    """A stable 16-hex-digit id from the normalised text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]


class Row(BaseModel):
    """Base for row schemas: strict, no unknown fields, round-trips through dicts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Problem(Row):
    """One problem with a gold answer, and where it came from."""

    id: str
    problem: str
    answer: str
    solution: str | None = None
    domain: str | None = None
    difficulty: str | None = None
    source: str = Field(description="file or URI the row was read from")
    source_line: int = Field(description="1-based line (jsonl) or record index (json/parquet)")
    source_format: str = Field(description="which loader format mapped the row")
    metadata: dict[str, str] = Field(default_factory=dict)


class Attempt(Row):
    """One sampled answer to a problem by a filter model (weak or strong)."""

    problem_id: str
    stage: str
    model: str
    attempt_index: int
    response: str
    extracted: str | None
    correct: bool
    num_tokens: int
    finish_reason: str | None = None


class Chain(Row):
    """A reasoning chain generated for a problem, with its verdict and quality score."""

    problem_id: str
    model: str
    chain_index: int
    response: str
    extracted: str | None
    correct: bool
    num_tokens: int
    quality_score: float | None = None
    quality_level: int | None = None
    quality_features: dict[str, float] = Field(default_factory=dict)


class Sample(Row):
    """One SFT example in the LIMO format (`curate/dataset.jsonl`)."""

    id: str
    system: str
    problem: str
    response: str
    answer: str
    provenance: dict[str, Any] = Field(default_factory=dict)


class BadRow(Row):
    """A row that could not become a Problem: kept with its reason, never dropped silently."""

    reason: str
    source: str
    line: int
    raw: str
