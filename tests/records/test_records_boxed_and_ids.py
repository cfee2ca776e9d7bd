"""`last_boxed` on nested, token, \\fbox and broken boxes; problem ids stable across runs and spellings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.records import last_boxed, load_problems, text_id, to_problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{42}$.", "42"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed{\\left\\{ x \\right.}", "\\left\\{ x \\right."),
        ("\\boxed 5", "5"),
        ("answer: $\\boxed 17$ done", "17"),
        ("\\fbox{7}", "7"),
        ("\\boxed{1} and later \\fbox{8}", "8"),
        ("\\boxed {3}", "3"),
        ("\\boxed{}", ""),
        ("\\boxed{\\text{(C)}}\\boxedsymbol", "\\text{(C)}"),
    ],
)
def test_last_boxed_finds_the_last_box_with_balanced_braces(text: str, expected: str) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text",
    ["no box here", "", "\\boxed{\\frac{1}{2}", "\\boxed{1} then \\boxed{2", "ends with \\boxed", "\\boxed5"],
)
def test_last_boxed_is_none_without_a_complete_last_box(text: str) -> None:
    assert last_boxed(text) is None


def test_last_boxed_is_linear_on_long_unbalanced_text() -> None:
    text = "\\boxed{" + "{" * 200_000 + "x"
    assert last_boxed(text) is None
    assert last_boxed("x " * 200_000 + "\\boxed{ok}") == "ok"


def test_same_text_with_other_whitespace_and_case_gets_the_same_id() -> None:
    a = to_problem({"problem": "What is  1+1?\n", "answer": "2"}, source="a", line=1)
    b = to_problem({"problem": "  WHAT IS 1+1?", "answer": "2"}, source="b", line=9)
    c = to_problem({"problem": "What is 1+2?", "answer": "3"}, source="a", line=2)
    assert a.id == b.id == text_id("what is 1+1?")
    assert c.id != a.id
    # The problem text itself is kept exactly as written.
    assert a.problem == "What is  1+1?\n"


def test_source_ids_are_preserved_as_text() -> None:
    assert to_problem({"id": 7, "problem": "p", "answer": "1"}, source="s", line=1).id == "7"
    assert to_problem({"id": 7.0, "problem": "p", "answer": "1"}, source="s", line=1).id == "7"
    assert to_problem({"id": "q-3", "problem": "p", "answer": "1"}, source="s", line=1).id == "q-3"
    assert to_problem({"idx": 0, "question": "q", "answer": "x #### 4"}, source="s", line=1).id == "0"
    # A bool is not an id; the text hash stands in.
    assert to_problem({"id": True, "problem": "p", "answer": "1"}, source="s", line=1).id == text_id("p")


def test_ids_are_the_same_on_every_load(tmp_path: Path) -> None:
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"problem": f"Problem {i}?", "answer": str(i)} for i in range(50)]), "utf-8")
    first = [p.id for p in load_problems(str(path)).problems]
    second = [p.id for p in load_problems(str(path)).problems]
    assert first == second and len(set(first)) == 50
