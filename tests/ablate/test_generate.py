"""A study's generations: attempts already drawn elsewhere are copied in (once), and each picked problem set gets
its own folder, keyed by the problems and the stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limo_ray.ablate.generate import GENERATE_DIR, fill_from, generate
from limo_ray.config import load_config
from limo_ray.curate.generations import GenerationStore, stored_attempts
from limo_ray.curate.problem_table import read_problems
from limo_ray.runfolder import Manifest
from tests.fixtures import toy_problem_pool


def attempt(key: str, problem_id: str, index: int) -> dict[str, Any]:
    return {
        "key": key,
        "problem_id": problem_id,
        "attempt_index": index,
        "round": 0,
        "model": "strong",
        "response": f"\\boxed{{{index}}}",
        "num_tokens": 3,
        "finish_reason": "stop",
        "correct": index % 2 == 0,
        "extracted": str(index),
        "grade_reason": "exact",
        "error": None,
    }


def test_fill_from_copies_each_missing_attempt_of_the_wanted_problems_once(tmp_path: Path) -> None:
    curation, earlier_study, target = tmp_path / "curation", tmp_path / "study", tmp_path / "target"
    GenerationStore(curation).append([attempt("k1", "p1", 0), attempt("k2", "p1", 1), attempt("k3", "p2", 0)])
    GenerationStore(earlier_study).append([attempt("k1", "p1", 0), attempt("k4", "p1", 2)])
    GenerationStore(target).append([attempt("k2", "p1", 1)])
    assert fill_from(target, [curation, earlier_study, tmp_path / "absent"], {"p1"}) == 2
    assert fill_from(target, [curation, earlier_study], {"p1"}) == 0  # a re-run copies nothing
    rows = stored_attempts(target)
    assert sorted(row["key"] for row in rows) == ["k1", "k2", "k4"]  # p2 was not asked for; nothing twice
    assert next(row for row in rows if row["key"] == "k4") == attempt("k4", "p1", 2)


def test_each_picked_problem_set_gets_its_own_generation_folder(tmp_path: Path) -> None:
    config = load_config("tiny")
    problems = toy_problem_pool(12, seed=1)
    study = tmp_path / "run" / "ablate" / "difficulty"
    first = generate(config, tmp_path / "run", study, "chains", problems[:8], [], lambda line: None)
    again = generate(config, tmp_path / "run", study, "chains", list(reversed(problems[:8])), [], lambda line: None)
    other = generate(config, tmp_path / "run", study, "chains", problems[4:], [], lambda line: None)
    assert first == again != other
    assert first.parent.parent == study / GENERATE_DIR and first.parent.name.startswith("chains-")
    assert [p.id for p in read_problems(first / "picked" / "problems.parquet")] == sorted(p.id for p in problems[:8])
    manifest = Manifest.read(first / "picked")
    assert manifest is not None and manifest.complete and manifest.rows_out == 8


def test_the_quality_stage_scores_the_chains_its_chains_stage_asked_for_not_every_chain_copied_in(
    tmp_path: Path,
) -> None:
    """A study's folder is filled with every chain other studies drew for its problems (the quality study draws
    more per problem); what it scores, and so its arms, must not depend on which studies ran before it."""
    from limo_ray.curate.chains import chain_store, write_drawn_chains
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.quality_stage import Quality, read_scored_chains

    config = load_config("tiny")
    (problem,) = toy_problem_pool(1, seed=3)
    ctx = CurateContext(run_dir=tmp_path / "run", log=lambda line: None)
    rows = [{**attempt(f"k{i}", problem.id, i), "correct": True} for i in range(8)]
    chain_store(ctx.curate_dir, "strong").append(rows)
    stage = Quality(config.curate.quality, ("strong",))

    stage.run(ctx, [problem])  # no drawn.json: a chains stage completed before it existed; every cached chain
    assert sorted(r["attempt_index"] for r in read_scored_chains(ctx.curate_dir)) == list(range(8))

    write_drawn_chains(ctx.curate_dir, {"strong": ["k0", "k1", "k2", "k3"]})
    stage.run(ctx, [problem])
    assert sorted(r["attempt_index"] for r in read_scored_chains(ctx.curate_dir)) == [0, 1, 2, 3]
