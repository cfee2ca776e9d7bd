"""A finished curation written from files, as `limo run` leaves it: the pool, every stage's decisions (the ledger
rebuilt from them by the project's code), the scored chains (scored by the project's scorer) and the curated set.

The pool is 160 toy problems p0..p159. dedup drops p0..p9 and decontamination p10..p19; the weak filter solves
(drops) levels 1-2; the strong filter measures the rest with `int(id) % 6` successes of 8 (kept in band: 1..3);
balance keeps every band problem, whose chains are written at every quality level except L3 for every fourth of
them; select takes the best 30.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from limo_ray.ablate.source import Curation, read_curation
from limo_ray.ablate.study import curation_key
from limo_ray.config import QualityConfig, RunConfig, load_config
from limo_ray.curate.export import DATASET_JSONL, chain_sample
from limo_ray.curate.ledger import rebuild_ledger
from limo_ray.curate.pipeline import STAGE_NAMES, curation_stages
from limo_ray.curate.problem_table import write_problems
from limo_ray.curate.quality import score_chain
from limo_ray.curate.quality_stage import SCORED_CHAINS, SCORED_SCHEMA
from limo_ray.curate.select import best_chains
from limo_ray.curate.stage import Decision, write_decisions
from limo_ray.records import Problem
from limo_ray.runfolder import Manifest, write_jsonl_atomic
from limo_ray.toy.chains import reference_chain
from limo_ray.toy.problems import ToyProblem, generate_toy_problems
from tests.fixtures import toy_problem_pool

POOL_SIZE = 160
DEDUP_DROPS = {f"p{i}" for i in range(10)}
DECONTAMINATION_DROPS = {f"p{i}" for i in range(10, 20)}
STRONG_ATTEMPTS = 8
CURATED_SIZE = 30
CHAIN_MODELS = ("strong", "strong_b")
QUALITY = load_config("tiny").curate.quality
SYSTEM = load_config("tiny").prompt.system


@dataclass(frozen=True)
class SyntheticRun:
    run_dir: Path
    curation: Curation
    lacks_l3: frozenset[str]  # band problems written without an L3 chain


def number(pid: str) -> int:
    return int(pid.removeprefix("p"))


def strong_successes(pid: str) -> int:
    return number(pid) % 6


def chains_at_every_level(
    problem: Problem, toy: ToyProblem, quality: QualityConfig, skip: Iterable[int] = ()
) -> list[dict[str, Any]]:
    """Correct chains of `problem` (`toy`: the same problem as the toy world made it), one per scorer level L1..L5
    (minus `skip`): the toy's reference chains and their sentence prefixes (a cut L5 chain scores L4), each scored
    by the project's scorer, the first text found per level."""
    by_level: dict[int, dict[str, Any]] = {}
    for quality_level in (1, 2, 3, 4, 5):
        for seed in range(3):
            sentences = re.split(r"(?<=[.:])\s+", reference_chain(toy, quality_level, seed))
            for k in range(1, len(sentences) + 1):
                text = " ".join(sentences[:k])
                if k < len(sentences):
                    text += f" \\boxed{{{problem.answer}}}"
                score = score_chain(text, quality.weights, quality.reference_length)
                by_level.setdefault(score.level, {"text": text, "score": score})
    rows = []
    for index, (level, found) in enumerate(sorted(by_level.items())):
        if level in skip:
            continue
        score = found["score"]
        rows.append(
            {
                "problem_id": problem.id,
                "model": CHAIN_MODELS[index % 2],
                "attempt_index": index,
                "response": found["text"],
                "num_tokens": score.words + 5,
                "words": score.words,
                "score": score.score,
                "level": score.level,
                "features": json.dumps(score.features, sort_keys=True),
            }
        )
    return rows


def write_stage(curate_dir: Path, stage: str, decisions: list[Decision]) -> None:
    write_decisions(decisions, curate_dir / stage / "decisions.parquet")


def drop_these(problems: list[Problem], dropped: set[str], reason: str) -> list[Decision]:
    return [
        Decision(p.id, "dropped", reason) if p.id in dropped else Decision(p.id, "kept", "passed") for p in problems
    ]


def build_synthetic_run(run_dir: Path) -> SyntheticRun:
    curate_dir = run_dir / "curate"
    problems = toy_problem_pool(POOL_SIZE, seed=5)
    write_problems(problems, curate_dir / "ingest" / "problems.parquet")
    write_stage(curate_dir, "ingest", [Decision(p.id, "kept", "ingested") for p in problems])
    write_stage(curate_dir, "dedup", drop_these(problems, DEDUP_DROPS, "near_duplicate"))
    deduped = [p for p in problems if p.id not in DEDUP_DROPS]
    write_stage(curate_dir, "decontaminate", drop_these(deduped, DECONTAMINATION_DROPS, "benchmark_overlap"))
    clean = [p for p in deduped if p.id not in DECONTAMINATION_DROPS]
    weak = [
        Decision(p.id, "dropped", "solved", {"attempts": 1, "successes": 1})
        if int(p.difficulty or 0) <= 2
        else Decision(p.id, "kept", "unsolved", {"attempts": 4, "successes": 0})
        for p in clean
    ]
    write_stage(curate_dir, "weak_filter", weak)
    hard = [p for p, d in zip(clean, weak, strict=True) if d.decision == "kept"]
    strong = []
    for p in hard:
        successes = strong_successes(p.id)
        facts = {"attempts": STRONG_ATTEMPTS, "successes": successes}
        kept = 1 <= successes <= 3
        strong.append(Decision(p.id, "kept" if kept else "dropped", "in_band" if kept else "out_of_band", facts))
    write_stage(curate_dir, "strong_filter", strong)
    band = [p for p, d in zip(hard, strong, strict=True) if d.decision == "kept"]
    write_stage(curate_dir, "balance", [Decision(p.id, "kept", "quota") for p in band])
    lacks_l3 = frozenset(p.id for i, p in enumerate(band) if i % 4 == 0)
    toys = {f"p{i}": t for i, t in enumerate(generate_toy_problems(POOL_SIZE, seed=5))}
    scored = [
        row
        for p in band
        for row in chains_at_every_level(p, toys[p.id], QUALITY, skip=(3,) if p.id in lacks_l3 else ())
    ]
    SCORED_CHAINS.path(curate_dir).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(scored, schema=SCORED_SCHEMA), SCORED_CHAINS.path(curate_dir))
    for stage in ("chains", "quality"):
        write_stage(curate_dir, stage, [Decision(p.id, "kept", "scored") for p in band])
    best = best_chains(scored, CHAIN_MODELS)
    ranked = sorted(band, key=lambda p: (-best[p.id]["score"], p.id))[:CURATED_SIZE]
    write_stage(curate_dir, "select", [Decision(p.id, "kept", "top_n") for p in ranked])
    write_stage(curate_dir, "export", [Decision(p.id, "kept", "exported") for p in ranked])
    weak_facts = {d.problem_id: d.facts for d in weak}
    strong_facts = {d.problem_id: d.facts for d in strong}
    samples = [
        chain_sample(p, best[p.id], best[p.id]["response"], SYSTEM, weak_facts[p.id], strong_facts[p.id])
        for p in ranked
    ]
    write_jsonl_atomic(curate_dir / DATASET_JSONL, [s.to_row() for s in samples])  # as export writes it
    rebuild_ledger(curate_dir, STAGE_NAMES)
    return SyntheticRun(run_dir, read_curation(curate_dir), lacks_l3)


def mark_curation_finished(run_dir: Path, config: RunConfig) -> None:
    """Make the curation's last stage say complete for `config`'s stages, as `limo run` leaves it (so `limo
    ablate` does not curate again). `config` as the command resolves it: the stages' keys include model paths."""
    key = curation_key(curation_stages(config))
    Manifest("export", [], CURATED_SIZE, CURATED_SIZE, 0, key, 1.0, True).write(run_dir / "curate" / "export")


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    return build_synthetic_run(tmp_path_factory.mktemp("ablate") / "run")
