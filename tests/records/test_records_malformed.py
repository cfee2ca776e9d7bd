"""Malformed rows in jsonl, json and parquet files land in `rejected` with their cause; counts reconcile."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from limo_ray.errors import LimoError
from limo_ray.records import (
    BadRow,
    FieldMap,
    Problem,
    expand_sources,
    iter_records,
    load_problems,
    write_rejected,
)
from tests.fixtures import MALFORMED_JSONL_LINES, write_malformed_jsonl


@pytest.fixture
def bad_jsonl(tmp_path: Path) -> tuple[Path, dict[int, str | None]]:
    path = tmp_path / "mixed.jsonl"
    return path, write_malformed_jsonl(path)


def test_each_malformed_jsonl_row_is_rejected_with_its_cause(
    bad_jsonl: tuple[Path, dict[int, str | None]],
) -> None:
    path, expected = bad_jsonl
    result = load_problems([str(path)])
    rejected = {bad.line: bad for bad in result.rejected}
    assert sorted(rejected) == sorted(line for line, reason in expected.items() if reason)
    for line, reason in expected.items():
        if reason:
            assert reason in rejected[line].reason, (line, rejected[line].reason)
            assert rejected[line].source == str(path)
    kept_lines = [p.source_line for p in result.problems]
    assert kept_lines == [line for line, reason in expected.items() if reason is None]


def test_jsonl_counts_reconcile_and_blank_lines_count_as_neither(
    bad_jsonl: tuple[Path, dict[int, str | None]],
) -> None:
    path, _ = bad_jsonl
    result = load_problems(str(path))
    assert result.rows_in == len(MALFORMED_JSONL_LINES) == len(result.problems) + len(result.rejected)
    assert len(result.problems) == 6
    # The blank second line is skipped, yet line numbers stay physical.
    assert result.rejected[0].line == 3


def test_rejected_rows_keep_their_raw_text(bad_jsonl: tuple[Path, dict[int, str | None]]) -> None:
    path, _ = bad_jsonl
    rejected = {bad.line: bad for bad in load_problems(str(path)).rejected}
    assert rejected[3].raw == '{"problem": "What is 2+2?", "answer": }'
    assert rejected[4].raw == "[1, 2, 3]"
    assert rejected[13].raw.endswith("garbage\ufffd\ufffd")
    assert json.loads(rejected[5].raw) == {"question_text": "What is 3+3?", "answer": "6"}


def test_kept_jsonl_rows_have_faithful_answers(bad_jsonl: tuple[Path, dict[int, str | None]]) -> None:
    path, _ = bad_jsonl
    answers = {p.problem: p.answer for p in load_problems(str(path)).problems}
    assert answers == {
        "What is 1+1?": "2",
        "Half of one?": "\\frac{1}{2}",
        "Miles?": "27.0",
        "Count?": "27",
        "Line\u2028separator?": "A",
        "Windows line ending?": "5",
    }


def test_iter_records_streams_rows_in_file_order(bad_jsonl: tuple[Path, dict[int, str | None]]) -> None:
    path, expected = bad_jsonl
    stream = iter_records(str(path))
    first = next(stream)
    assert isinstance(first, Problem) and first.source_line == 1
    rest = list(stream)
    assert [item.source_line if isinstance(item, Problem) else item.line for item in rest] == sorted(expected)[1:]


def test_gzipped_jsonl_reads_like_plain(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    write_malformed_jsonl(plain)
    packed = tmp_path / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_problems(str(plain)), load_problems(str(packed))
    assert [p.answer for p in a.problems] == [p.answer for p in b.problems]
    assert [r.reason for r in a.rejected] == [r.reason for r in b.rejected]


def test_json_array_rejects_non_object_elements(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    records = [
        {"problem": "What is 1+1?", "answer": "2"},
        5,
        "text",
        None,
        [1, 2],
        {"problem": "", "answer": "1"},
        {"problem": "AMC style?", "answer": 142.0, "difficulty": 2.0, "url": "https://x/2022_AMC_12A"},
    ]
    path.write_text(json.dumps(records), encoding="utf-8")
    result = load_problems(str(path))
    assert result.rows_in == 7 == len(result.problems) + len(result.rejected)
    assert [p.source_line for p in result.problems] == [1, 7]
    reasons = {bad.line: bad.reason for bad in result.rejected}
    assert "JSON number" in reasons[2]
    assert "JSON string" in reasons[3]
    assert "JSON null" in reasons[4]
    assert "JSON array" in reasons[5]
    assert "is empty" in reasons[6]
    amc = result.problems[1]
    assert (amc.answer, amc.difficulty, amc.source_format) == ("142.0", "2", "aime")


def test_json_object_holding_one_list_is_read_as_records(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 1, "data": [{"problem": "p?", "answer": "1"}]}), encoding="utf-8")
    result = load_problems(str(path))
    assert [p.answer for p in result.problems] == ["1"]


def test_json_file_that_is_really_jsonl_is_a_user_error_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b", "answer": "2"}\n', encoding="utf-8")
    with pytest.raises(LimoError, match=r"name it \.jsonl"):
        load_problems(str(path))


def test_parquet_rows_are_mapped_and_bad_ones_rejected(tmp_path: Path) -> None:
    path = tmp_path / "pool.parquet"
    table = pa.table(
        {
            "id": pa.array([10, 11, 12, 13, 14], pa.int64()),
            "problem": pa.array(["What is 1+1?", None, "  ", "Find x.", "Half?"]),
            "answer": pa.array(["2", "3", "4", None, None]),
            "solution": pa.array([None, None, None, "x is 3", "so \\boxed{\\tfrac12}"]),
            "level": pa.array([1, 2, 3, 4, 5], pa.int64()),
        }
    )
    # Small row groups: the row index must run across row-group boundaries.
    pq.write_table(table, path, row_group_size=2)
    result = load_problems(str(path))
    assert result.rows_in == 5 == len(result.problems) + len(result.rejected)
    assert [(p.id, p.answer, p.source_line, p.difficulty) for p in result.problems] == [
        ("10", "2", 1, "1"),
        ("14", "\\tfrac12", 5, "5"),
    ]
    reasons = {bad.line: bad.reason for bad in result.rejected}
    assert "is null" in reasons[2]
    assert "whitespace only" in reasons[3]
    assert "no \\boxed{}" in reasons[4]


def test_parquet_float_answers_keep_their_written_form(tmp_path: Path) -> None:
    path = tmp_path / "floats.parquet"
    pq.write_table(pa.table({"problem": ["a?", "b?"], "answer": pa.array([27.0, 0.5], pa.float64())}), path)
    assert [p.answer for p in load_problems(str(path)).problems] == ["27.0", "0.5"]


def test_explicit_field_map_overrides_the_format(tmp_path: Path) -> None:
    path = tmp_path / "custom.jsonl"
    path.write_text(
        '{"prompt": "Compute 6*7.", "gold": 42, "uid": "q-1", "topic": "arith", "hardness": "Level 5"}\n{"gold": 1}\n',
        encoding="utf-8",
    )
    fields = {
        "problem_field": "prompt",
        "answer_field": "gold",
        "id_field": "uid",
        "domain_field": "topic",
        "difficulty_field": "hardness",
    }
    result = load_problems(str(path), fmt="plain", fields=fields)
    (problem,) = result.problems
    assert (problem.id, problem.answer, problem.domain, problem.difficulty) == (
        "q-1",
        "42",
        "arith",
        "Level 5",
    )
    assert result.rejected[0].reason == "problem field 'prompt' is missing"
    assert load_problems(str(path), fields=FieldMap(**fields)).problems == result.problems


def test_metadata_holds_other_small_scalars_as_text(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    record = {
        "problem": "p?",
        "answer": "1",
        "year": 1999,
        "weight": 0.5,
        "flag": False,
        "note": "x" * 1000,
        "tags": ["a"],
        "extra": None,
        "messages": [{"role": "user", "content": "p?"}],
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    (problem,) = load_problems(str(path)).problems
    assert problem.metadata == {"year": "1999", "weight": "0.5", "flag": "false"}


def test_write_rejected_writes_jsonl_atomically(tmp_path: Path, bad_jsonl: tuple[Path, dict[int, str | None]]) -> None:
    path, _ = bad_jsonl
    rejected = load_problems(str(path)).rejected
    target = tmp_path / "out" / "rejected.jsonl"
    target.parent.mkdir()
    target.write_text("stale\n", encoding="utf-8")
    assert write_rejected(rejected, target) == target
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").split("\n") if line]
    assert [BadRow.model_validate(row) for row in rows] == rejected
    assert set(rows[0]) == {"reason", "source", "line", "raw"}
    assert [p.name for p in target.parent.iterdir()] == ["rejected.jsonl"]


def test_user_errors_name_what_failed(tmp_path: Path) -> None:
    with pytest.raises(LimoError, match=r"no data file matches .*nothing-\*\.jsonl"):
        expand_sources([str(tmp_path / "nothing-*.jsonl")])
    (tmp_path / "notes.txt").write_text("hi", encoding="utf-8")
    with pytest.raises(LimoError, match=r"\.jsonl, \.json or \.parquet"):
        load_problems(str(tmp_path / "notes.txt"))
    (tmp_path / "a.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(LimoError, match="unknown record format 'maths'"):
        load_problems(str(tmp_path / "a.jsonl"), fmt="maths")
    with pytest.raises(LimoError, match="unknown field-map key"):
        load_problems(str(tmp_path / "a.jsonl"), fields={"question_field": "q"})


def test_expand_sources_sorts_globs_expands_directories_and_dedups(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "c.parquet", "readme.md"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.json").write_text("[]", encoding="utf-8")
    assert expand_sources([str(tmp_path / "*.jsonl")]) == [
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
    ]
    assert expand_sources([str(tmp_path)]) == [str(tmp_path / n) for n in ("a.jsonl", "b.jsonl", "c.parquet")]
    assert expand_sources([str(tmp_path / "**" / "*.json")]) == [str(tmp_path / "sub" / "d.json")]
    assert expand_sources([str(tmp_path / "b.jsonl"), str(tmp_path / "*.jsonl")]) == [
        str(tmp_path / "b.jsonl"),
        str(tmp_path / "a.jsonl"),
    ]
    empty = load_problems(str(tmp_path / "a.jsonl"))
    assert (empty.rows_in, empty.problems, empty.rejected) == (0, [], [])


def test_corrupt_files_are_user_errors_naming_the_file(tmp_path: Path) -> None:
    packed = gzip.compress(b'{"problem": "p?", "answer": "1"}\n' * 2000)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(LimoError, match=r"reading .*cut\.jsonl\.gz failed"):
        load_problems(str(truncated))
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"PAR1 not really")
    with pytest.raises(LimoError, match=r"cannot read .*fake\.parquet as Parquet"):
        load_problems(str(fake))
