"""The random-selection control of `limo run`: seeded, order-independent, same chain choice as `select`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from limo_ray.config import load_config
from limo_ray.curate.baseline import OVERSAMPLE, RandomSample, RandomSelect
from limo_ray.curate.context import CurateContext
from limo_ray.curate.pipeline import curation_stages, random_control_stages
from limo_ray.curate.quality_stage import SCORED_CHAINS, SCORED_SCHEMA
from limo_ray.curate.select import SELECTED
from tests.fixtures import toy_problem_pool

MODELS = ("strong", "strong_b")


def _ctx(tmp_path: Path) -> CurateContext:
    return CurateContext(run_dir=tmp_path, log=lambda line: None)


def test_random_sample_is_seeded_and_ignores_input_order(tmp_path: Path) -> None:
    problems = toy_problem_pool(200, seed=3)
    first = RandomSample(40, seed=0).run(_ctx(tmp_path), problems)
    again = RandomSample(40, seed=0).run(_ctx(tmp_path), list(reversed(problems)))
    other_seed = RandomSample(40, seed=1).run(_ctx(tmp_path), problems)
    assert len(first.kept) == math.ceil(40 * OVERSAMPLE)
    assert {p.id for p in first.kept} == {p.id for p in again.kept}
    assert {p.id for p in first.kept} != {p.id for p in other_seed.kept}
    assert len(first.decisions) == len(problems)


def _write_chains(ctx: CurateContext, rows: list[dict]) -> None:
    path = SCORED_CHAINS.path(ctx.curate_dir)
    path.parent.mkdir(parents=True)
    full = [{"response": "r", "num_tokens": 10, "words": 5, "level": 3, "features": "{}", **r} for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=SCORED_SCHEMA), path)


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
    result = RandomSelect(20, MODELS, seed=0).run(ctx, problems)
    chosen = {p.id for p in result.kept}
    with_chain = {r["problem_id"] for r in rows}
    assert len(chosen) == 20 and chosen <= with_chain
    top_by_score = {p.id for i, p in enumerate(problems) if i % 3}
    top_by_score = set(sorted(top_by_score, key=lambda pid: -int(pid[1:]))[:20])
    assert chosen != top_by_score  # not the score ranking `select` would make
    selected = json.loads(SELECTED.path(ctx.curate_dir).read_text())
    assert set(selected) == chosen
    assert all(chain["model"] == "strong_b" for chain in selected.values())  # the best chain, as in `select`


def test_baseline_pipeline_replaces_only_the_problem_choice() -> None:
    config = load_config("tiny")
    control = random_control_stages(config, 10)
    curated = {s.name: s for s in curation_stages(config)}
    names = [s.name for s in control]
    # The shared stages are built from the same settings, so their outputs are the curated run's.
    assert [s for s in control if s.name in ("ingest", "dedup", "decontaminate", "chains", "quality", "export")] == [
        curated[n] for n in ("ingest", "dedup", "decontaminate", "chains", "quality", "export")
    ]
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
