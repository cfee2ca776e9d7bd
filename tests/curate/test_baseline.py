"""The random-selection control of `limo run`: seeded, order-independent, same chain choice as `select`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.config import load_config
from limo_ray.curate.baseline import OVERSAMPLE, RandomSample, RandomSelect, random_baseline_stages
from limo_ray.curate.context import CurateContext
from limo_ray.curate.quality_stage import CHAINS_FILE, SCORED_SCHEMA
from limo_ray.curate.select import SELECTED_FILE
from tests.fixtures import toy_problem_pool


def _ctx(tmp_path: Path, seed: int = 0) -> CurateContext:
    return CurateContext(config=load_config("tiny", [f"seed={seed}"]), run_dir=tmp_path, log=lambda line: None)


def test_random_sample_is_seeded_and_ignores_input_order(tmp_path: Path) -> None:
    problems = toy_problem_pool(200, seed=3)
    first = RandomSample(40).run(_ctx(tmp_path), problems)
    again = RandomSample(40).run(_ctx(tmp_path), list(reversed(problems)))
    other_seed = RandomSample(40).run(_ctx(tmp_path, seed=1), problems)
    assert len(first.kept) == math.ceil(40 * OVERSAMPLE)
    assert {p.id for p in first.kept} == {p.id for p in again.kept}
    assert {p.id for p in first.kept} != {p.id for p in other_seed.kept}
    assert len(first.decisions) == len(problems)


def _write_chains(ctx: CurateContext, rows: list[dict]) -> None:
    folder = ctx.stage_dir("quality")
    folder.mkdir(parents=True)
    full = [{"response": "r", "num_tokens": 10, "words": 5, "level": 3, "features": "{}", **r} for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=SCORED_SCHEMA), folder / CHAINS_FILE)


def test_random_select_takes_problems_with_a_correct_chain_in_random_order_not_by_score(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    problems = toy_problem_pool(60, seed=4)
    # Scored (correct) chains for two thirds of the problems; the score rises with the index.
    rows = []
    for i, p in enumerate(problems):
        if i % 3:
            rows += [
                {"problem_id": p.id, "model": "strong", "attempt_index": 0, "score": i / 100},
                {"problem_id": p.id, "model": "strong_b", "attempt_index": 1, "score": i / 100 + 0.001},
            ]
    _write_chains(ctx, rows)
    result = RandomSelect(20).run(ctx, problems)
    chosen = {p.id for p in result.kept}
    with_chain = {r["problem_id"] for r in rows}
    assert len(chosen) == 20 and chosen <= with_chain
    top_by_score = {p.id for i, p in enumerate(problems) if i % 3}
    top_by_score = set(sorted(top_by_score, key=lambda pid: -int(pid[1:]))[:20])
    assert chosen != top_by_score  # not the score ranking `select` would make
    selected = json.loads((ctx.stage_dir("select") / SELECTED_FILE).read_text())
    assert set(selected) == chosen
    assert all(chain["model"] == "strong_b" for chain in selected.values())  # the best chain, as in `select`


def test_baseline_pipeline_replaces_only_the_problem_choice() -> None:
    names = [s.name for s in random_baseline_stages(10)]
    assert names == [
        "ingest",
        "dedup",
        "decontaminate",
        "random_sample",
        "chains",
        "quality",
        "select",
        "export",
    ]
