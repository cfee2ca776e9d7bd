"""Dedup and decontamination on planted duplicates, verbatim benchmark copies and clean control pools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.decontaminate import BenchmarkIndex
from limo_ray.curate.dedup import dedup_key, problem_numbers
from limo_ray.curate.pipeline import build_stage, curation_stages, run_curation
from limo_ray.curate.stage import Stage, StageOutcome, read_decisions
from limo_ray.records import Problem, load_problems
from limo_ray.toy.references import resolve_references


def _problem(pid: str, text: str, answer: str = "1") -> Problem:
    return Problem(id=pid, problem=text, answer=answer, source="t.jsonl", source_line=1, source_format="plain")


def _ctx(run_dir: Path) -> CurateContext:
    return CurateContext(run_dir=run_dir, log=lambda line: None)


def _dedup(*overrides: str) -> Stage:
    return build_stage(load_config("tiny", list(overrides)), "dedup")


def _curate(run_dir: Path, *overrides: str) -> tuple[CurateContext, list[StageOutcome]]:
    """ingest -> dedup -> decontaminate on the tiny preset with `overrides` (paths given, no toy world)."""
    ctx = _ctx(run_dir)
    return ctx, run_curation(ctx, curation_stages(load_config("tiny", list(overrides)), "decontaminate"))


DISTINCT = [
    "Let $f(x) = 3x^2 - 5x + 2$. Find the sum of the roots of $f(x) = 0$ and express it as a common fraction.",
    "A bag contains 5 red marbles and 7 blue marbles. Two marbles are drawn without replacement. "
    "What is the probability that both are red?",
    "How many positive divisors does 3600 have?",
    "Triangle $ABC$ has sides 13, 14 and 15. Compute the radius of its inscribed circle.",
    "How many positive divisors does 3601 have?",  # differs from the third only by a number: distinct
    "Find the remainder when $7^{2024}$ is divided by 100.",
]


def test_planted_near_duplicates_are_removed_and_distinct_problems_kept(tmp_path: Path) -> None:
    planted = [
        # reworded a little
        "Let $f(x) = 3x^2 - 5x + 2$. Determine the sum of the roots of $f(x) = 0$, "
        "and express it as a common fraction.",
        # extra whitespace and line breaks
        "A bag  contains 5 red marbles\n and 7 blue   marbles. Two marbles are drawn without replacement.\n"
        "What is the probability that both are red?",
        # punctuation and LaTeX spacing changed
        "Triangle $ABC$ has sides 13,14, and 15; compute the radius of its inscribed circle!",
        # a renumbered list around the same problem
        "1. Find the remainder when $7^{2024}$ is divided by 100.",
    ]
    problems = [_problem(f"d{i}", t) for i, t in enumerate(DISTINCT)] + [
        _problem(f"p{i}", t) for i, t in enumerate(planted)
    ]
    result = _dedup().run(_ctx(tmp_path), problems)
    assert [p.id for p in result.kept] == [f"d{i}" for i in range(len(DISTINCT))]
    dropped = {d.problem_id: d for d in result.decisions if d.decision == "dropped"}
    assert set(dropped) == {"p0", "p1", "p2", "p3"}
    assert dropped["p0"].facts["duplicate_of"] == "d0" and dropped["p3"].facts["duplicate_of"] == "d5"
    absorbed = {d.problem_id: d.facts["absorbed"] for d in result.decisions if d.decision == "kept"}
    assert absorbed["d1"] == ["p1"] and absorbed["d2"] == []


def test_exact_duplicates_keep_the_first_in_pool_order(tmp_path: Path) -> None:
    problems = [_problem("a", "What is 2 + 2?"), _problem("b", "what is 2+2 ?"), _problem("c", "What is 2 + 3?")]
    result = _dedup().run(_ctx(tmp_path), problems)
    assert [p.id for p in result.kept] == ["a", "c"]
    assert result.decisions[1].reason == "exact_duplicate" and result.facts["exact_duplicates"] == 1


def test_dedup_key_and_numbers() -> None:
    assert dedup_key("Find $\\frac{1}{2}$  of 10!") == "find 1 2 of 10"
    assert problem_numbers("1. Take 23 apples\n2) and 4.5 more") == {"23": 1, "4.5": 1}


def test_benchmark_index_ignores_boilerplate_and_matches_short_copies() -> None:
    index = BenchmarkIndex([8], max_ngram_items=2)
    boiler = "express your answer as a common fraction in lowest terms please"
    for i in range(3):
        index.add("b", str(i), f"Problem {i} about cats and dogs number {i * 17}. {boiler}")
    index.add("b", "short", "What is 6 times 7?")
    assert index.overlaps(f"Something new entirely about birds. {boiler}") == []
    assert [o.item_id for o in index.overlaps("what is 6 times 7")] == ["short"]
    pool_phrase = "the sum of all the positive integers that divide it"
    index.add("b", "p", f"Take 12 and {pool_phrase}.")
    assert [o.item_id for o in index.overlaps(f"Take 99 and {pool_phrase}.")] == ["p"]
    for _ in range(2):
        index.count_pool_text(f"Take a number and {pool_phrase}.")
    assert index.overlaps(f"Take 99 and {pool_phrase}.") == []  # common in the pool too: boilerplate
    assert [o.item_id for o in index.overlaps("Problem 1 about cats and dogs number 17.")] == ["1"]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verbatim_math500_and_aime24_copies_are_all_removed_and_named(tmp_path: Path, shared_data: Path) -> None:
    math500 = [json.loads(line) for line in (shared_data / "math500" / "test.jsonl").open()]
    aime = [json.loads(line) for line in (shared_data / "aime24" / "test.jsonl").open()]
    pool = load_problems([str(shared_data / "competition_pool" / "math_train.json")]).problems[:300]
    rows = [{"problem": p.problem, "answer": p.answer} for p in pool]
    rows += [{"problem": r["problem"], "answer": r["answer"]} for r in math500]
    rows += [{"problem": r["problem"], "answer": r["answer"]} for r in aime]
    source = _write_jsonl(tmp_path / "pool.jsonl", rows)
    ctx, _ = _curate(
        tmp_path / "run",
        f"curate.pool.sources=[{source}]",
        f"benchmarks.data_root={shared_data}",
        "curate.decontaminate.benchmarks=[math500, aime24, amc23, olympiadbench, minerva, gsm8k]",
    )
    report = [json.loads(line) for line in (ctx.curate_dir / "decontamination.jsonl").read_text().splitlines()]
    removed_lines = {int(r["source_line"]) for r in _decisions_with_source(ctx, report)}
    copies = set(range(301, 301 + len(math500) + len(aime)))
    # Every verbatim copy is gone (a MATH500 item that dedup folded into an identical pool problem counts too).
    dedup_dropped = {
        d["problem_id"]
        for d in read_decisions(ctx.stage_dir("dedup") / "decisions.parquet")
        if d["decision"] == "dropped"
    }
    kept_lines = _kept_lines(ctx)
    assert not (copies & kept_lines)
    named = {(o["benchmark"]) for r in report for o in r["overlaps"]}
    assert {"math500", "aime24"} <= named
    assert all(r["overlaps"][0]["item_id"] for r in report)
    assert len(removed_lines) + len(dedup_dropped) >= len(copies)


def _decisions_with_source(ctx: CurateContext, report: list[dict]) -> list[dict]:
    ids = {r["problem_id"] for r in report}
    import pyarrow.parquet as pq

    ledger = pq.read_table(ctx.curate_dir / "ledger.parquet").to_pylist()
    return [row for row in ledger if row["problem_id"] in ids]


def _kept_lines(ctx: CurateContext) -> set[int]:
    import pyarrow.parquet as pq

    ledger = pq.read_table(ctx.curate_dir / "ledger.parquet").to_pylist()
    return {row["source_line"] for row in ledger if row.get("decontaminate") == "kept"}


@pytest.mark.parametrize("pool_file", ["aime_1983_2023.json", "math_train.json"])
def test_clean_competition_pool_loses_at_most_one_percent(tmp_path: Path, shared_data: Path, pool_file: str) -> None:
    source = shared_data / "competition_pool" / pool_file
    _, outcomes = _curate(
        tmp_path, f"curate.pool.sources=[{source}]", f"benchmarks.data_root={shared_data}", "curate.dedup.near=false"
    )
    before, after = len(outcomes[1].kept), len(outcomes[2].kept)
    lost = (before - after) / before
    print(f"{pool_file}: {before} -> {after} ({lost:.2%} removed)")
    assert lost <= 0.01


@pytest.mark.integration
def test_clean_toy_pool_loses_at_most_one_percent(tmp_path: Path) -> None:
    # The toy pool comes from the same templates as the toy benchmark: the world's generator keeps out what
    # decontamination would call a copy, so a control run finds (almost) nothing to remove.
    config = resolve_references(load_config("tiny", ["toy.size=test", "curate.pool.sources=[toy:pool]"]))
    outcomes = run_curation(_ctx(tmp_path), curation_stages(config, "decontaminate"))
    before, after = len(outcomes[1].kept), len(outcomes[2].kept)
    lost = (before - after) / before
    print(f"toy pool: {before} -> {after} ({lost:.2%} removed)")
    assert before > 500
    assert lost <= 0.01
