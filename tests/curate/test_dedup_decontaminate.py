"""Dedup and decontamination on planted duplicates, verbatim benchmark copies and clean control pools."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.decontaminate import BenchmarkIndex
from limo_ray.curate.dedup import dedup_key, problem_numbers
from limo_ray.curate.pipeline import build_stage, curation_stages, run_curation
from limo_ray.curate.stage import Stage, StageOutcome, read_decisions
from limo_ray.records import Problem, load_problems
from limo_ray.toy import ToyWorld
from limo_ray.toy.references import resolve_references
from tests.fixtures import write_jsonl


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


def test_verbatim_math500_and_aime24_copies_are_all_removed_and_named(tmp_path: Path, shared_data: Path) -> None:
    math500 = [json.loads(line) for line in (shared_data / "math500" / "test.jsonl").open()]
    aime = [json.loads(line) for line in (shared_data / "aime24" / "test.jsonl").open()]
    pool = load_problems([str(shared_data / "competition_pool" / "math_train.json")]).problems[:300]
    rows = [{"problem": p.problem, "answer": p.answer} for p in pool]
    rows += [{"problem": r["problem"], "answer": r["answer"]} for r in math500]
    rows += [{"problem": r["problem"], "answer": r["answer"]} for r in aime]
    source = write_jsonl(rows, tmp_path / "pool.jsonl")
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


# A word n-gram overlap written here, apart from BenchmarkIndex: its own tokens (lower-case words, numbers,
# operators), no boilerplate exemption (so it flags whatever decontamination could), and the same reading of a
# copy: the n-grams a text shares with an item are at least half of the smaller one's (a text shorter than n
# words is one n-gram, so it must be the item's whole text).
_WORD = re.compile(r"[a-z]+|\d+|[-+*/=()]")


def _grams(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words)} if len(words) < n else {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _brute_force_copies(texts: dict[str, str], items: dict[str, str]) -> dict[str, set[str]]:
    """Every (text, item) pair compared: text id -> the ids of the items it copies (only texts that copy one)."""
    item_grams = {item_id: _grams(item) for item_id, item in items.items()}
    copies: dict[str, set[str]] = {}
    for text_id, text in texts.items():
        grams = _grams(text)
        hits = {i for i, g in item_grams.items() if len(grams & g) >= 0.5 * min(len(grams), len(g))}
        if hits:
            copies[text_id] = hits
    return copies


def _planted_copies(benchmark: list[dict]) -> list[dict]:
    """One benchmark item per (domain, level) cell, copied into a pool row three ways in turn: verbatim,
    re-cased with doubled spaces and no final punctuation, and inside a longer text (for items long enough to
    have 8-grams of their own; a shorter item is copied re-cased instead)."""
    first_of_cell: dict[tuple[str, int], dict] = {}
    for item in benchmark:
        first_of_cell.setdefault((item["type"], item["level"]), item)
    planted = []
    for i, item in enumerate(first_of_cell.values()):
        text = item["problem"]
        form = ("verbatim", "recased", "embedded")[i % 3]
        if form == "embedded" and len(_WORD.findall(text.lower())) < 10:
            form = "recased"
        copy = {
            "verbatim": text,
            "recased": "  ".join(text.upper().rstrip(".?").split(" ")),
            "embedded": f"Warm up with one from last week's sheet. {text} Write down each step you take.",
        }[form]
        planted.append({**item, "id": f"planted-{form}-{item['id']}", "problem": copy, "copies": item["id"]})
    return planted


@pytest.mark.integration
def test_toy_pool_control_removes_exactly_the_planted_benchmark_copies(
    tmp_path: Path, toy_world: ToyWorld, report
) -> None:
    """The world's generator keeps out of the pool what BenchmarkIndex would call a copy, so the index finding
    nothing there proves nothing. Here the pool is judged independently: a brute-force n-gram check confirms it
    holds no copy of a benchmark item, and benchmark items planted into it must be removed, each naming the item
    it copies; nothing else may be."""
    benchmark = [json.loads(line) for line in toy_world.benchmark.read_text(encoding="utf-8").splitlines()]
    originals = [json.loads(line) for line in toy_world.pool.read_text(encoding="utf-8").splitlines()]
    planted = _planted_copies(benchmark)
    items = {item["id"]: item["problem"] for item in benchmark}
    assert _brute_force_copies({r["id"]: r["problem"] for r in originals}, items) == {}
    # The check itself finds what was planted (so its silence on the pool means something).
    found = _brute_force_copies({r["id"]: r["problem"] for r in planted}, items)
    assert found == {r["id"]: {r["copies"]} for r in planted}
    assert {r["id"].split("-")[1] for r in planted} == {"verbatim", "recased", "embedded"} and len(planted) == 20

    # Planted rows first: dedup keeps the first of a duplicate group, so every copy reaches decontamination.
    pool = write_jsonl(planted + originals, tmp_path / "pool.jsonl")
    config = resolve_references(load_config("tiny", ["toy.size=test", f"curate.pool.sources=[{pool}]"]))
    ctx = _ctx(tmp_path / "run")
    outcomes = run_curation(ctx, curation_stages(config, "decontaminate"))
    reached = {p.id for p in outcomes[1].kept}
    assert {r["id"] for r in planted} <= reached
    removed = {
        r["problem_id"]: {(o["benchmark"], o["item_id"]) for o in r["overlaps"]}
        for r in map(json.loads, (ctx.curate_dir / "decontamination.jsonl").read_text().splitlines())
    }
    assert removed == {r["id"]: {("toy", r["copies"])} for r in planted}
    clean = len(reached) - len(planted)
    report(f"toy pool control: {len(planted)} planted copies removed, 0 of {clean} clean pool problems removed")
    assert clean > 500
