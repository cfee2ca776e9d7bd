"""The toy problem generator and its reference chains: reproducible, disjoint splits, answers right at every level."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from limo_ray.errors import LimoError
from limo_ray.grading import grade
from limo_ray.records.schema import normalize_text
from limo_ray.toy.chains import QUALITY_LEVELS, reference_chain
from limo_ray.toy.problem_sets import make_benchmark, make_pool
from limo_ray.toy.problems import DOMAINS, LEVELS, generate_problems, generate_toy_problems, make_problem
from limo_ray.toy.spec import TOY_SPECS

EXPLORE = re.compile(r"\b(let me|perhaps)\b", re.IGNORECASE)
VERIFY = re.compile(r"\b(check|verif\w*)\b", re.IGNORECASE)
CONNECT = re.compile(r"\b(therefore|so|because)\b", re.IGNORECASE)


def test_generator_is_reproducible_from_its_seed_and_a_shorter_list_is_a_prefix() -> None:
    first = [(p.text, p.answer) for p in generate_toy_problems(200, seed=11)]
    again = [(p.text, p.answer) for p in generate_toy_problems(200, seed=11)]
    shorter = [(p.text, p.answer) for p in generate_toy_problems(80, seed=11)]
    other = [(p.text, p.answer) for p in generate_toy_problems(200, seed=12)]
    assert first == again
    assert shorter == first[:80]
    assert sum(a == b for a, b in zip(first, other, strict=True)) < 20


def test_every_domain_and_level_cell_gets_an_equal_share_of_integer_answers() -> None:
    problems = generate_problems(400, seed=3)
    cells = Counter((p.domain, p.difficulty) for p in problems)
    assert set(cells) == {(d, str(lv)) for d in DOMAINS for lv in LEVELS}
    assert set(cells.values()) == {20}
    assert all(re.fullmatch(r"-?\d+", p.answer) for p in problems)
    assert {p.source for p in problems} == {"toy:pool"}
    assert len({normalize_text(p.problem) for p in problems}) == 400


def test_pool_and_benchmark_share_no_problem_text_and_no_seed() -> None:
    spec = TOY_SPECS["full"]
    bench_problems, bench_rows = make_benchmark(spec, seed=0)
    pool = make_pool(spec, seed=0, exclude={normalize_text(p.text) for p in bench_problems})
    bench_texts = {normalize_text(r["problem"]) for r in bench_rows}
    pool_texts = {normalize_text(r["problem"]) for r in pool}
    assert len(bench_rows) == 300 and len(bench_texts) == 300
    assert Counter(r["level"] for r in bench_rows) == dict.fromkeys(LEVELS, 60)
    assert not bench_texts & pool_texts
    assert len(pool) > spec.pool_size  # the injected duplicates


def test_pool_holds_exact_case_and_near_duplicates_pointing_at_their_originals() -> None:
    spec = TOY_SPECS["full"]
    pool = make_pool(spec, seed=0, exclude=set())
    by_id = {r["id"]: r for r in pool}
    kinds = Counter(r.get("dup_kind") for r in pool if "dup_of" in r)
    assert kinds["exact"] == round(spec.exact_dup_frac * spec.pool_size)
    assert kinds["case"] == round(spec.case_dup_frac * spec.pool_size)
    assert kinds["near"] >= round(spec.near_dup_frac * spec.pool_size) * 0.95
    for row in pool:
        if "dup_of" not in row:
            continue
        original = by_id[row["dup_of"]]
        assert row["answer"] == original["answer"]
        same = normalize_text(row["problem"]) == normalize_text(original["problem"])
        assert same == (row["dup_kind"] in ("exact", "case")), (row, original)


@pytest.mark.parametrize("quality", QUALITY_LEVELS)
def test_every_reference_chain_grades_correct_at_every_quality(quality: int) -> None:
    problems = generate_toy_problems(500, seed=5)
    wrong = [
        (p.text, chain)
        for i, p in enumerate(problems)
        if not grade(chain := reference_chain(p, quality, i), str(p.answer)).correct
    ]
    assert wrong == []


def test_chain_levels_differ_in_the_features_limo_scores() -> None:
    problems = generate_toy_problems(200, seed=9)
    for quality, explore, verify, connect in ((1, 0, 0, 0), (3, 0, 0, 0), (5, 1, 1, 1)):
        chains = [reference_chain(p, quality, i) for i, p in enumerate(problems)]
        assert all(bool(EXPLORE.search(c)) == bool(explore) for c in chains), quality
        assert all(bool(VERIFY.search(c)) == bool(verify) for c in chains), quality
        assert all(bool(CONNECT.search(c)) == bool(connect) for c in chains), quality
    assert reference_chain(problems[0], 1) == f"\\boxed{{{problems[0].answer}}}"
    lengths = [sum(len(reference_chain(p, q, 0)) for p in problems) for q in QUALITY_LEVELS]
    assert lengths == sorted(lengths)


def test_chain_steps_recompute_to_the_answer() -> None:
    """Each step's arithmetic is true, so a chain is a derivation, not a decoration before the box."""
    checked = 0
    for p in generate_toy_problems(300, seed=21):
        for step in p.steps:
            for text in (step.math, step.check):
                sides = text.split(" = ")
                if all(re.fullmatch(r"[\d\s+\-*/]+", side) for side in sides):
                    values = {eval(side) for side in sides}  # digits and operators only
                    assert len(values) == 1, (p.text, text)
                    checked += 1
        assert re.search(rf"(?<!\d){p.answer}(?!\d)", p.steps[-1].math), p  # the last step yields the answer
    assert checked > 1000


def test_unknown_domain_or_level_is_a_user_error() -> None:
    import random

    with pytest.raises(LimoError, match="unknown toy domain"):
        make_problem(random.Random(0), "geometry", 1)
    with pytest.raises(LimoError, match="level"):
        make_problem(random.Random(0), "arithmetic", 6)
    with pytest.raises(LimoError, match="quality"):
        reference_chain(generate_toy_problems(1, seed=0)[0], 0)
