"""Record formats: map one record's fields (as each public dataset names them) to a `Problem`, or a `BadRow`.

Formats differ in field names and in how the gold answer is read (GSM8K's after ``####``, OlympiadBench's as
``final_answer[0]`` without ``$``, every format's from the last ``\\boxed{}`` of the solution when there is no
answer). `FORMATS` names them; "auto" picks one per record (`detect_format`); a `FieldMap` overrides field names.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any, Literal

from limo_ray.errors import LimoError
from limo_ray.records.boxed import last_boxed
from limo_ray.records.containers import json_kind, raw_record
from limo_ray.records.schema import BadRow, Problem, text_id

__all__ = ["FORMATS", "FORMAT_NAMES", "FieldMap", "check_format", "detect_format", "to_problem"]

# Metadata is for small identifying fields (year, url, source...); long texts are not metadata.
METADATA_MAX_CHARS = 512
_CHOICE_LETTER = re.compile(r"[A-J]")

AnswerStyle = Literal["plain", "gsm8k", "olympiad"]


@dataclass(frozen=True)
class _Spec:
    """Where one record format keeps each value: candidate field names, first present wins."""

    problem: tuple[str, ...]
    answer: tuple[str, ...]
    solution: tuple[str, ...]
    id: tuple[str, ...]
    domain: tuple[str, ...]
    difficulty: tuple[str, ...]
    answer_style: AnswerStyle = "plain"


FORMATS: dict[str, _Spec] = {
    # Hendrycks MATH / MATH-500 / Minerva (Qwen): gold in `answer`, else the last \boxed{} of `solution`.
    "math": _Spec(
        problem=("problem",),
        answer=("answer",),
        solution=("solution",),
        id=("unique_id", "id", "idx"),
        domain=("type", "subject"),
        difficulty=("level", "difficulty"),
    ),
    # NuminaMath-CoT: no answer column; the gold is the last \boxed{} of `solution` (NuminaMath-1.5 has one).
    "numina": _Spec(
        problem=("problem",),
        answer=("answer",),
        solution=("solution",),
        id=("id", "uuid"),
        domain=("problem_type",),
        difficulty=(),
    ),
    # AIME / AMC lists and the DeepScaleR competition pool: answer is a string or a number (27.0).
    "aime": _Spec(
        problem=("problem", "question"),
        answer=("answer",),
        solution=("solution",),
        id=("id", "idx"),
        domain=("type", "subject"),
        difficulty=("difficulty", "level"),
    ),
    # GSM8K: `answer` is the worked solution; the gold is the text after "####".
    "gsm8k": _Spec(
        problem=("question", "problem"),
        answer=("answer",),
        solution=(),
        id=("idx", "id"),
        domain=(),
        difficulty=(),
        answer_style="gsm8k",
    ),
    # OlympiadBench (Qwen2.5-Math copy): gold is final_answer[0] with its $...$ stripped, as Qwen grades it.
    "olympiadbench": _Spec(
        problem=("question", "problem"),
        answer=("final_answer", "answer"),
        solution=("solution",),
        id=("id",),
        domain=("subfield", "subject"),
        difficulty=(),
        answer_style="olympiad",
    ),
    # GPQA as LIMO ships it: options and instruction already in `question`, gold is the choice letter.
    "gpqa": _Spec(
        problem=("question", "problem"),
        answer=("answer",),
        solution=(),
        id=("id", "idx"),
        domain=("domain", "subdomain"),
        difficulty=(),
    ),
    # LIMO training data and LIMO eval sets; the question key order is LIMO's own eval code's order.
    "limo": _Spec(
        problem=("question", "problem", "Question", "input"),
        answer=("answer",),
        solution=("solution",),
        id=("id", "idx", "unique_id"),
        domain=("subject", "type", "subfield"),
        difficulty=("level", "difficulty"),
    ),
    "plain": _Spec(
        problem=("problem",),
        answer=("answer",),
        solution=("solution",),
        id=("id",),
        domain=(),
        difficulty=(),
    ),
}
FORMAT_NAMES = ("auto", *FORMATS)


@dataclass(frozen=True)
class FieldMap:
    """Explicit field names that override the format's own candidates (None keeps the format's)."""

    problem_field: str | None = None
    answer_field: str | None = None
    solution_field: str | None = None
    id_field: str | None = None
    domain_field: str | None = None
    difficulty_field: str | None = None

    @classmethod
    def coerce(cls, fields: FieldMap | Mapping[str, str | None] | None) -> FieldMap | None:
        """Accept a FieldMap, a plain mapping from config (unknown keys are an error), or None."""
        if fields is None or isinstance(fields, FieldMap):
            return fields
        known = {f.name for f in dataclass_fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise LimoError(f"unknown field-map key(s) {', '.join(map(repr, unknown))}; use {', '.join(sorted(known))}")
        for key, value in fields.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise LimoError(f"field-map key {key!r} must name a field (a non-empty string), got {value!r}")
        return cls(**dict(fields))

    def apply(self, spec: _Spec) -> _Spec:
        overrides = {
            name: (value,)
            for name, value in (
                ("problem", self.problem_field),
                ("answer", self.answer_field),
                ("solution", self.solution_field),
                ("id", self.id_field),
                ("domain", self.domain_field),
                ("difficulty", self.difficulty_field),
            )
            if value is not None
        }
        return replace(spec, **overrides) if overrides else spec


def check_format(fmt: str) -> None:
    """Raise a LimoError listing the valid names unless ``fmt`` is "auto" or one of `FORMATS`."""
    if fmt not in FORMAT_NAMES:
        raise LimoError(f"unknown record format {fmt!r}; use one of {', '.join(FORMAT_NAMES)}")


def detect_format(record: Mapping[str, Any]) -> str:
    """The record format "auto" picks for one record, from which fields it has (first rule that fits):

    1. ``final_answer`` present                                   -> olympiadbench
    2. ``messages`` present, or ``source`` + ``solution`` and no ``answer`` -> numina
    3. ``question`` / ``Question`` / ``input`` present and no ``problem``:
       a. ``answer`` is text containing ``####``                  -> gsm8k
       b. ``answer`` is a single capital letter A-J               -> gpqa
       c. otherwise                                               -> limo
    4. ``problem`` present:
       a. any of ``level``, ``type``, ``subject``, ``unique_id``, or no ``answer`` -> math
       b. any of ``year``, ``url``, ``difficulty``, ``aime_number``             -> aime
       c. ``solution`` present                                    -> limo
       d. otherwise                                               -> plain
    5. otherwise -> plain (which then rejects the row: it has no problem text)

    Formats differ in field names and in how the gold is read (gsm8k: after ``####``; olympiadbench:
    ``final_answer[0]`` without ``$``; all: last ``\\boxed{}`` of the solution when there is no answer).
    """
    if "final_answer" in record:
        return "olympiadbench"
    if "messages" in record or ("source" in record and "solution" in record and "answer" not in record):
        return "numina"
    if "problem" not in record and any(k in record for k in ("question", "Question", "input")):
        answer = record.get("answer")
        if isinstance(answer, str) and "####" in answer:
            return "gsm8k"
        if isinstance(answer, str) and _CHOICE_LETTER.fullmatch(answer.strip()):
            return "gpqa"
        return "limo"
    if "problem" in record:
        if "answer" not in record or any(k in record for k in ("level", "type", "subject", "unique_id")):
            return "math"
        if any(k in record for k in ("year", "url", "difficulty", "aime_number")):
            return "aime"
        if "solution" in record:
            return "limo"
    return "plain"


def _first_present(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in record), None)


def _number_text(value: int | float) -> str:
    """A number as the text it was written as: 27 -> "27", 27.0 -> "27.0", 1.8782106 -> "1.8782106"."""
    return repr(value) if isinstance(value, float) else str(value)


def _answer(record: Mapping[str, Any], spec: _Spec, solution: str | None) -> tuple[str | None, str | None, str | None]:
    """(answer, solution, rejection reason). The solution may change: GSM8K's lives in its answer."""
    name = next((n for n in spec.answer if record.get(n) is not None), None)
    value = record[name] if name is not None else None
    answer: str | None = None
    if isinstance(value, bool):
        return None, solution, f"answer field {name!r} is a boolean ({json.dumps(value)}), not an answer"
    if isinstance(value, float) and not math.isfinite(value):
        return None, solution, f"answer field {name!r} is {value!r}, not an answer"
    if spec.answer_style == "olympiad" and isinstance(value, list):
        # Qwen2.5-Math grades OlympiadBench against final_answer[0]; every row has exactly one entry.
        value = value[0] if value else None
    if isinstance(value, str):
        answer = value
        if spec.answer_style == "gsm8k" and "####" in value:
            worked, _, answer = value.rpartition("####")
            solution = solution or worked.strip() or None
        if spec.answer_style == "olympiad":
            answer = answer.strip().strip("$")
        answer = answer.strip()
    elif isinstance(value, int | float):
        answer = _number_text(value)
    elif isinstance(value, list | dict) and value:
        # Compound golds (a list of values, or named parts as in Kaoyan) stay JSON so a grader can parse them.
        answer = json.dumps(value, ensure_ascii=False)
    elif value is not None and not isinstance(value, list | dict):
        return None, solution, f"answer field {name!r} is a {type(value).__name__}, not text or a number"
    if answer:
        return answer, solution, None
    boxed = last_boxed(solution) if solution else None
    if boxed is not None and boxed.strip():
        return boxed.strip(), solution, None
    null_name = next((n for n in spec.answer if n in record), None)
    if name is not None:
        detail = f"field {name!r} is empty"
    elif null_name is not None:
        detail = f"field {null_name!r} is null"
    else:
        detail = f"no field {'/'.join(repr(n) for n in spec.answer)}" if spec.answer else "no answer field"
    if solution:
        return None, solution, f"no answer ({detail}) and no \\boxed{{}} in solution"
    return None, solution, f"no answer ({detail}) and no solution with a \\boxed{{}} to take it from"


def _solution(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    name = next((n for n in names if record.get(n) is not None), None)
    value = record.get(name) if name is not None else None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        # OlympiadBench keeps one or more reference solutions as a list.
        value = "\n\n".join(value)
    return value if isinstance(value, str) and value.strip() else None


def _source_id(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _label(record: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """Domain or difficulty as text: integral floats lose their ".0" (5.0 -> "5"), text stays as given."""
    for name in names:
        value = record.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, int | float):
            return _number_text(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _metadata(record: Mapping[str, Any], used: set[str], problem: str) -> dict[str, str]:
    """The record's other small scalar fields as text (lists, dicts, nulls and long texts are left out)."""
    meta: dict[str, str] = {}
    for key, value in record.items():
        if key in used or key in ("messages", "solution") or value is None:
            continue
        if isinstance(value, bool):
            meta[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            meta[key] = _number_text(value)
        elif isinstance(value, str) and len(value) <= METADATA_MAX_CHARS and value != problem:
            meta[key] = value
    return meta


def to_problem(
    record: Mapping[str, Any],
    *,
    fmt: str = "auto",
    fields: FieldMap | Mapping[str, str | None] | None = None,
    source: str,
    line: int,
) -> Problem | BadRow:
    """Map one record to a Problem, or to a BadRow saying which field is wrong and how.

    - problem: the first of the format's problem fields present; it must be non-blank text.
    - answer: the first non-null answer field; numbers keep their written form (27 -> "27", 27.0 ->
      "27.0"), a boolean is rejected, a list/dict becomes JSON text; when there is none, the last
      ``\\boxed{}`` of the solution; neither -> BadRow.
    - id: the source's id (ints as decimal text), else ``text_id(problem)``.
    - domain / difficulty: from type/subject/subfield and level/difficulty, as text.
    - metadata: the remaining small scalar fields, as text.
    """
    resolved = detect_format(record) if fmt == "auto" else fmt
    if resolved not in FORMATS:
        check_format(resolved)
    spec = FORMATS[resolved]
    field_map = FieldMap.coerce(fields)
    if field_map is not None:
        spec = field_map.apply(spec)

    def bad(reason: str) -> BadRow:
        return BadRow(reason=reason, source=source, line=line, raw=raw_record(record))

    problem_name = _first_present(record, spec.problem)
    if problem_name is None:
        if len(spec.problem) == 1:
            return bad(f"problem field {spec.problem[0]!r} is missing")
        looked = ", ".join(repr(n) for n in spec.problem)
        return bad(f"problem field is missing (none of {looked})")
    problem = record[problem_name]
    if problem is None:
        return bad(f"problem field {problem_name!r} is null")
    if not isinstance(problem, str):
        return bad(f"problem field {problem_name!r} is not text (a JSON {json_kind(problem)})")
    if not problem.strip():
        return bad(f"problem field {problem_name!r} is empty" + (" (whitespace only)" if problem else ""))

    solution = _solution(record, spec.solution)
    answer, solution, reason = _answer(record, spec, solution)
    if reason is not None or answer is None:
        return bad(reason or "no answer")

    used = {problem_name}
    for names in (spec.answer, spec.solution, spec.id, spec.domain, spec.difficulty):
        used.update(n for n in names if n in record)
    return Problem(
        id=_source_id(record, spec.id) or text_id(problem),
        problem=problem,
        answer=answer,
        solution=solution,
        domain=_label(record, spec.domain),
        difficulty=_label(record, spec.difficulty),
        source=source,
        source_line=line,
        source_format=resolved,
        metadata=_metadata(record, used, problem),
    )
