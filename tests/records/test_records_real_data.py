"""Every loader on the real benchmark and pool files in ../shared/data: every row accounted for, golds right.

The counts are the record counts stated in each folder's README. The only rows not kept are the four
MATH-train pool rows whose gold answer is null or empty: there is nothing to grade them against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from limo_ray.records import Problem, last_boxed, load_problems

DATA_DIR = Path(__file__).parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"shared data folder {DATA_DIR} is missing (it sits next to the repo)"
)

# (path under DATA_DIR, rows kept, rows rejected, format "auto" resolves to)
REAL_FILES = [
    ("math500/test.jsonl", 500, 0, "math"),
    ("aime24/test.jsonl", 30, 0, "aime"),
    ("amc23/test.jsonl", 40, 0, "aime"),
    ("olympiadbench/test.jsonl", 675, 0, "olympiadbench"),
    ("minerva_math/test.jsonl", 272, 0, "math"),
    ("gsm8k/test.jsonl", 1319, 0, "gsm8k"),
    ("limo/eval_data/aime/test.jsonl", 30, 0, "aime"),
    ("limo/eval_data/amc/test.jsonl", 40, 0, "aime"),
    ("limo/eval_data/math/test.jsonl", 500, 0, "math"),
    ("limo/eval_data/olympiadbench/test.jsonl", 675, 0, "limo"),
    ("limo/eval_data/cn_math_2024/test.jsonl", 30, 0, "limo"),
    ("limo/eval_data/gaokao/test.jsonl", 79, 0, "limo"),
    ("limo/eval_data/kaoyan/test.jsonl", 199, 0, "limo"),
    ("limo/eval_data/grade_school_math/test.jsonl", 210, 0, "plain"),
    ("limo/eval_data/minerva/test.jsonl", 272, 0, "limo"),
    ("limo/eval_data/gpqa/test.jsonl", 198, 0, "gpqa"),
    ("competition_pool/aime_1983_2023.json", 975, 0, "aime"),
    ("competition_pool/amc_2022_2023.json", 83, 0, "aime"),
    ("competition_pool/math_train.json", 7470, 4, "math"),
]


def _raw_records(rel: str) -> list[dict[str, Any]]:
    path = DATA_DIR / rel
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    # split on "\n" only: GPQA questions hold U+2028/U+0085, which str.splitlines would treat as line ends.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _load(rel: str) -> list[Problem]:
    result = load_problems([str(DATA_DIR / rel)])
    assert not result.rejected, [r.reason for r in result.rejected]
    return result.problems


@pytest.mark.parametrize(("rel", "kept", "rejected", "fmt"), REAL_FILES, ids=[f[0] for f in REAL_FILES])
def test_every_row_of_each_real_file_is_accounted_for(rel: str, kept: int, rejected: int, fmt: str) -> None:
    result = load_problems([str(DATA_DIR / rel)])
    assert len(result.problems) == kept
    assert len(result.rejected) == rejected
    assert result.rows_in == kept + rejected == len(_raw_records(rel))
    assert {p.source_format for p in result.problems} == {fmt}
    assert [p.source_line for p in result.problems] == sorted(p.source_line for p in result.problems)
    assert all(p.problem.strip() and p.answer.strip() for p in result.problems)
    assert all(p.source == str(DATA_DIR / rel) for p in result.problems)


def test_math_train_pool_rejects_only_the_rows_without_a_gold_answer() -> None:
    result = load_problems([str(DATA_DIR / "competition_pool/math_train.json")])
    reasons = {bad.line: bad.reason for bad in result.rejected}
    assert sorted(reasons) == [887, 1010, 5329, 5331]
    assert "'answer' is null" in reasons[887]
    assert "'answer' is empty" in reasons[5329]
    assert all("no answer" in reason for reason in reasons.values())


def test_math500_keeps_answer_id_subject_and_level() -> None:
    raw = _raw_records("math500/test.jsonl")
    problems = _load("math500/test.jsonl")
    for rec, problem in zip(raw, problems, strict=True):
        assert problem.answer == rec["answer"].strip()
        assert problem.id == rec["unique_id"]
        assert problem.domain == rec["subject"]
        assert problem.difficulty == str(rec["level"])
        assert problem.solution == rec["solution"]


def test_amc23_float_answers_stay_numbers_as_text() -> None:
    problems = _load("amc23/test.jsonl")
    assert problems[0].answer == "27.0"
    assert problems[0].id == "0"
    raw = _raw_records("amc23/test.jsonl")
    assert [p.answer for p in problems] == [repr(rec["answer"]) for rec in raw]
    assert "2023_AMC_12A" in problems[0].metadata["url"]


def test_aime24_keeps_source_ids_and_string_answers() -> None:
    problems = _load("aime24/test.jsonl")
    assert [p.id for p in problems] == [str(i) for i in range(60, 90)]
    assert problems[0].answer == "204"


def test_minerva_gold_is_last_boxed_of_solution_and_matches_limo_extraction() -> None:
    problems = _load("minerva_math/test.jsonl")
    limo = _load("limo/eval_data/minerva/test.jsonl")
    raw = _raw_records("minerva_math/test.jsonl")
    assert [p.answer for p in problems] == [last_boxed(r["solution"]).strip() for r in raw]
    assert [p.answer for p in problems] == [p.answer for p in limo]
    assert problems[0].domain == raw[0]["type"]


def test_gsm8k_gold_is_the_text_after_hashes_and_solution_is_the_work() -> None:
    problems = _load("gsm8k/test.jsonl")
    raw = _raw_records("gsm8k/test.jsonl")
    assert problems[0].answer == "18"
    assert problems[0].solution is not None and "<<16-3-4=9>>" in problems[0].solution
    assert all(p.answer == r["answer"].split("####")[-1].strip() for p, r in zip(problems, raw, strict=True))
    assert not any("####" in p.answer or "####" in (p.solution or "") for p in problems)
    assert [p.id for p in problems[:3]] == ["0", "1", "2"]


def test_olympiadbench_gold_is_first_final_answer_without_dollars() -> None:
    problems = _load("olympiadbench/test.jsonl")
    raw = _raw_records("olympiadbench/test.jsonl")
    for p, r in zip(problems, raw, strict=True):
        assert p.answer == r["final_answer"][0].strip("$").strip()
        assert p.id == str(r["id"])
        assert p.domain == r["subfield"]
        assert p.solution == "\n\n".join(r["solution"])
    with_unit = [p for p, r in zip(problems, raw, strict=True) if r["unit"]]
    assert with_unit and all("unit" in p.metadata for p in with_unit)


def test_gpqa_answers_are_choice_letters() -> None:
    problems = _load("limo/eval_data/gpqa/test.jsonl")
    assert {p.answer for p in problems} <= set("ABCD")
    assert problems[0].id == "1"


def test_limo_compound_golds_become_json_text() -> None:
    school = _load("limo/eval_data/grade_school_math/test.jsonl")
    raw = _raw_records("limo/eval_data/grade_school_math/test.jsonl")
    for p, r in zip(school, raw, strict=True):
        if isinstance(r["answer"], list | dict):
            assert json.loads(p.answer) == r["answer"]
        elif isinstance(r["answer"], int):
            assert p.answer == str(r["answer"])
    assert "[3568, 5880, 6512, 864]" in {p.answer for p in school}
    kaoyan = _load("limo/eval_data/kaoyan/test.jsonl")
    assert sum(p.answer.startswith("{") for p in kaoyan) == 3
    assert kaoyan[0].metadata["source"] == "QA_2020考研数2"


def test_gaokao_keeps_choice_letter_in_metadata() -> None:
    problems = _load("limo/eval_data/gaokao/test.jsonl")
    assert problems[0].answer == "C. {x \\mid-3<x<4}"
    assert problems[0].metadata["choice_answer"] == "C"


def test_competition_pool_difficulty_is_text_and_year_is_metadata() -> None:
    aime = _load("competition_pool/aime_1983_2023.json")
    assert aime[0].metadata["year"] == "1983"
    assert {p.difficulty for p in aime} >= {"4", "2.75"}
    amc = _load("competition_pool/amc_2022_2023.json")
    assert amc[0].answer == "142.0"
    assert sum("2023_AMC" in p.metadata["url"] for p in amc) == 40
    # The pool has no ids: the id is the hash of the problem text, stable across runs.
    assert len(aime[0].id) == 16


def test_one_glob_over_every_benchmark_reconciles() -> None:
    result = load_problems([str(DATA_DIR / "*" / "test.jsonl"), str(DATA_DIR / "limo/eval_data/*/test.jsonl")])
    assert len(result.sources) == 16
    assert result.rows_in == len(result.problems) + len(result.rejected) == 2836 + 2233
    assert not result.rejected
