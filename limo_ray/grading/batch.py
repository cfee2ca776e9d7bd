"""Grade a JSONL file of (response, gold) records: what `limo grade` runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from limo_ray.errors import LimoError
from limo_ray.grading.grader import GradeMode, default_grader
from limo_ray.records import BadRow, write_rejected
from limo_ray.runfolder import atomic_open


@dataclass(frozen=True)
class GradeSummary:
    graded: int
    correct: int
    rejected: int
    rejected_path: Path

    @property
    def accuracy(self) -> float:
        return self.correct / self.graded if self.graded else 0.0


def grade_jsonl(
    input_path: Path, output_path: Path, response_field: str, answer_field: str, mode: GradeMode = "auto"
) -> GradeSummary:
    if not input_path.is_file():
        raise LimoError(f"--input {input_path} does not exist")
    grader = default_grader()
    rejected: list[BadRow] = []
    graded = correct = 0
    rejected_path = output_path.with_name(output_path.name.removesuffix(".jsonl") + ".rejected.jsonl")
    with input_path.open("rb") as source, atomic_open(output_path) as sink:
        for number, raw in enumerate(tqdm(source, desc="grading", unit=" rows", disable=None), start=1):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text.strip():
                continue
            record, problem = _parse(text, response_field, answer_field)
            if problem:
                rejected.append(BadRow(reason=problem, source=str(input_path), line=number, raw=text))
                continue
            verdict = grader.grade(record[response_field], str(record[answer_field]), mode)
            graded += 1
            correct += verdict.correct
            record.update(correct=verdict.correct, extracted=verdict.extracted, grade_reason=verdict.reason)
            sink.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    if rejected:
        write_rejected(rejected, rejected_path)
    return GradeSummary(graded, correct, len(rejected), rejected_path)


def _parse(text: str, response_field: str, answer_field: str) -> tuple[dict, str | None]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(record, dict):
        return {}, f"a JSON {type(record).__name__}, not an object"
    response, answer = record.get(response_field), record.get(answer_field)
    if not isinstance(response, str):
        return record, f"response field {response_field!r} is missing or not text"
    is_number = isinstance(answer, int | float) and not isinstance(answer, bool)
    if not (isinstance(answer, str) and answer.strip()) and not is_number:
        return record, f"answer field {answer_field!r} is missing, empty or not text/number"
    return record, None
