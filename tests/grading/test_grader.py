"""The grader: right answers in every form are right, and every kind of near-miss is wrong."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from limo_ray.grading import Grader, extract_final_answer, grade
from tests.grading.perturb import PERTURBATIONS, abandoned_draft_response, boxed_response, off_by_one


def _math500(shared_data: Path) -> list[dict]:
    return [json.loads(line) for line in (shared_data / "math500" / "test.jsonl").open()]


def test_math500_gold_solutions_grade_correct(shared_data: Path, report) -> None:
    rows = _math500(shared_data)
    wrong = [(r["answer"], grade(r["solution"], r["answer"])) for r in rows]
    wrong = [w for w in wrong if not w[1].correct]
    accuracy = 1 - len(wrong) / len(rows)
    report(f"grader on MATH500 gold solutions: {len(rows) - len(wrong)}/{len(rows)} correct ({accuracy:.2%})")
    assert len(rows) == 500
    assert accuracy >= 0.995, wrong[:10]


def test_math500_perturbed_answers_grade_incorrect_for_each_kind(shared_data: Path, report) -> None:
    from math_verify import parse, verify

    def equals_gold(gold: str, candidate: str) -> bool:
        # The reference judge of "this perturbation happens to equal the gold": plain math-verify.
        return bool(verify(parse(f"${gold}$"), parse(f"${candidate}$")))

    totals: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    accepted_examples: dict[str, list[tuple[str, str]]] = {}
    for row in _math500(shared_data):
        gold = row["answer"]
        cases = {kind: make(gold) for kind, make in PERTURBATIONS.items()}
        wrong = off_by_one(gold)
        for kind, candidate in cases.items():
            if candidate is None:
                continue
            if equals_gold(gold, candidate):
                skipped[kind] += 1
                continue
            totals[kind] += 1
            verdict = grade(boxed_response(candidate), gold)
            rejected[kind] += not verdict.correct
            if verdict.correct:
                accepted_examples.setdefault(kind, []).append((gold, candidate))
        if wrong is not None and not equals_gold(gold, wrong):
            totals["abandoned_draft"] += 1
            verdict = grade(abandoned_draft_response(gold, wrong), gold)
            rejected["abandoned_draft"] += not verdict.correct
            if verdict.correct:
                accepted_examples.setdefault("abandoned_draft", []).append((gold, wrong))
    for kind in [*PERTURBATIONS, "abandoned_draft"]:
        report(
            f"perturbation {kind:24} n={totals[kind]:4} said incorrect={rejected[kind]:4} "
            f"({rejected[kind] / max(totals[kind], 1):.2%}), skipped as equal to gold={skipped[kind]}"
        )
    for kind in [*PERTURBATIONS, "abandoned_draft"]:
        assert totals[kind] > 0, f"no {kind} cases generated"
        assert rejected[kind] / totals[kind] >= 0.995, (kind, accepted_examples.get(kind, [])[:10])


@pytest.mark.parametrize(
    ("gold", "predicted"),
    [
        ("0.7", "70"),  # the percent rule: LIMO's grader calls these equal
        ("70", "0.7"),
        ("(0,1]", "[0,1]"),
        ("[0,1]", "(0,1]"),
        ("0.0001", "0.00011"),
        ("0.00011", "0.0001"),
        ("\\frac{2}{3}", "\\frac{3}{2}"),
        ("(1,2)", "(2,1)"),
        ("52_8", "52_9"),
        ("52_8", "53_8"),
        ("B", "C"),
    ],
)
def test_near_misses_are_incorrect(gold: str, predicted: str) -> None:
    assert not grade(f"So the answer is $\\boxed{{{predicted}}}$.", gold).correct


@pytest.mark.parametrize(
    ("gold", "predicted"),
    [
        ("27.0", "27"),
        ("1000", "1,000"),
        ("\\frac{1}{2}", "0.5"),
        ("\\frac12", "\\dfrac{1}{2}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("x^2+1", "1+x^2"),
        ("(0,1]", "(0, 1]"),
        ("90^\\circ", "90"),
        ("52_8", "52"),
        ("C", "(C)"),
        ("C", "\\text{C}"),
    ],
)
def test_equivalent_forms_are_correct(gold: str, predicted: str) -> None:
    verdict = grade(f"Therefore the answer is $\\boxed{{{predicted}}}$.", gold)
    assert verdict.correct, verdict


def test_final_box_wins_over_an_abandoned_draft() -> None:
    verdict = grade("Maybe \\boxed{12}? No, recount: \\boxed{13}.", "12")
    assert (verdict.correct, verdict.extracted) == (False, "13")


def test_think_block_is_scratch_and_answer_follows_it() -> None:
    verdict = grade("<think>perhaps \\boxed{3}... no, it is 4</think>The answer is $\\boxed{4}$.", "4")
    assert verdict.correct and verdict.extracted == "4"


def test_unfinished_think_block_is_incorrect_even_with_a_boxed_draft() -> None:
    verdict = grade("<think>Let me try: \\boxed{4} — checking the cases again, case 3 gives", "4")
    assert not verdict.correct and verdict.extracted is None and "cut off" in verdict.reason


def test_truncated_output_without_final_answer_is_incorrect() -> None:
    verdict = grade("Step 1: expand the product. Step 2: collect the terms in x so that", "7")
    assert not verdict.correct and verdict.extracted is None


def test_answer_phrase_fallbacks() -> None:
    assert extract_final_answer("... so the final answer is: 42.").answer == "42"
    assert extract_final_answer("We get $x=5$.\nThe answer is $\\frac{3}{4}$.").answer == "\\frac{3}{4}"
    assert extract_final_answer("work\n#### 18").answer == "18"
    assert grade("Answer: 18", "18").correct


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("**Answer:** \\frac{1}{2}", "\\frac{1}{2}"),
        ("**Final answer:** 12", "12"),
        ("**Final Answer**: 9", "9"),
        ("So the final answer is **7**.", "7"),
    ],
)
def test_markdown_bold_around_an_answer_phrase_is_not_part_of_the_answer(response: str, answer: str) -> None:
    assert extract_final_answer(response).answer == answer
    assert grade(response, answer).correct


def test_gpqa_choice_letters() -> None:
    assert grade("Comparing energies, option A fits. \\boxed{A}", "A").correct
    assert not grade("\\boxed{B}", "A").correct
    assert grade("\\boxed{(D)}", "D", mode="choice").correct
    assert not grade("\\boxed{10^{-4} eV}", "A").correct


def test_grading_from_threads_is_bounded_and_agrees_with_the_main_thread() -> None:
    grader = Grader(timeout_s=2)
    cases = [("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", True), ("\\boxed{x^2+2}", "x^2+1", False)] * 10
    # A power tower sympy cannot finish: must come back within the bound, as incorrect.
    cases.append(("\\boxed{10^{10^{10^{10}}}+1}", "\\frac{1}{3}", False))
    expected = [c[2] for c in cases]
    main_thread = [grader.grade(r, g).correct for r, g, _ in cases]
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda c: grader.grade(c[0], c[1]).correct, cases))
    elapsed = time.perf_counter() - start
    grader.symbolic.close()
    assert main_thread == expected
    assert threaded == expected
    assert threading.current_thread() is threading.main_thread()
    assert elapsed < 30  # a bound on the hang, not a timing claim: unbounded would be hours


def test_grade_batch_adds_verdict_columns() -> None:
    batch = {
        "response": ["\\boxed{5}", "\\boxed{6}", "no answer"],
        "answer": ["5", "5", "5"],
        "id": [1, 2, 3],
    }
    out = Grader().grade_batch(batch)
    assert out["correct"] == [True, False, False]
    assert out["extracted"] == ["5", "6", None]
    assert out["id"] == [1, 2, 3]


def test_empty_gold_is_an_error() -> None:
    with pytest.raises(ValueError, match="gold"):
        grade("\\boxed{1}", "  ")
