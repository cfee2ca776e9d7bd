"""Balance quotas, seeded diversity, and best-chain selection, on plain rows (no engine)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from limo_ray.config import load_config
from limo_ray.curate.balance import Balance, water_fill
from limo_ray.curate.context import CurateContext
from limo_ray.curate.pipeline import build_stage
from limo_ray.curate.select import best_chains
from limo_ray.curate.stage import StageResult
from limo_ray.records import Problem
from tests.fixtures import toy_problem_pool


def _balance(tmp_path: Path, problems: list[Problem], *overrides: str) -> StageResult:
    stage = build_stage(load_config("tiny", list(overrides)), "balance")
    assert isinstance(stage, Balance)
    return stage.run(CurateContext(run_dir=tmp_path, log=lambda line: None), problems)


def test_water_fill_is_even_and_gives_short_cells_leftovers_to_others() -> None:
    assert water_fill({("a",): 100, ("b",): 100, ("c",): 100}, 31) == {("a",): 11, ("b",): 10, ("c",): 10}
    assert water_fill({("a",): 2, ("b",): 100, ("c",): 100}, 30) == {("a",): 2, ("b",): 14, ("c",): 14}
    assert sum(water_fill({("a",): 3, ("b",): 4}, 100).values()) == 7


def test_every_quota_is_met_within_one_with_enough_supply(tmp_path: Path) -> None:
    problems = toy_problem_pool(600, seed=11)
    result = _balance(tmp_path, problems, "curate.balance.size=100")
    cells = Counter((p.domain, p.difficulty) for p in result.kept)
    assert len(result.kept) == 100 and len(cells) == 20
    assert max(cells.values()) - min(cells.values()) <= 1
    assert result.facts["short_cells"] == []


def test_short_cells_are_named_and_others_take_the_slack(tmp_path: Path) -> None:
    problems = [p for p in toy_problem_pool(600, seed=12) if not (p.domain == "counting" and p.difficulty == "5")]
    problems += [p for p in toy_problem_pool(60, seed=13) if p.domain == "counting" and p.difficulty == "5"][:2]
    result = _balance(tmp_path, problems, "curate.balance.size=200")
    assert result.facts["short_cells"] == ["counting/5"]
    assert len(result.kept) == 200


def test_same_seed_same_selection_and_another_seed_differs(tmp_path: Path) -> None:
    problems = toy_problem_pool(600, seed=14)
    pick = [
        sorted(p.id for p in _balance(tmp_path, problems, "curate.balance.size=60", f"seed={s}").kept)
        for s in (0, 0, 1)
    ]
    assert pick[0] == pick[1] and pick[0] != pick[2]


def test_best_chain_is_the_top_score_then_the_shorter() -> None:
    rows = [
        {"problem_id": "a", "model": "m1", "attempt_index": 0, "score": 0.5, "num_tokens": 10},
        {"problem_id": "a", "model": "m2", "attempt_index": 1, "score": 0.9, "num_tokens": 50},
        {"problem_id": "a", "model": "m1", "attempt_index": 2, "score": 0.9, "num_tokens": 40},
        {"problem_id": "b", "model": "m2", "attempt_index": 0, "score": 0.2, "num_tokens": 5},
    ]
    best = best_chains(rows, ["m1", "m2"])
    assert (best["a"]["model"], best["a"]["attempt_index"]) == ("m1", 2)
    assert best["b"]["score"] == 0.2
