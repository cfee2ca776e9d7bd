"""Generations a study needs beyond the curation's: the same curation stages, on the problems it picks.

A study that trains on problems the chains stage never reached (a difficulty bin, a random draw) runs the
curation's own stages — `strong_filter`, or `chains` + `quality` — on those problems, in a folder of its own:
`ablate/<study>/generate/<what>-<key>/curate/`, the key naming the problems and the stages' settings, so a
changed draw (another --repeats) gets a new folder and never collides with a finished one. Before the stages
run, their generation caches are filled with every attempt already drawn for those problems, by the curation
and by any earlier study in the run folder (attempt keys hash prompt, model, sampling, engine seed and
attempt index, so an attempt drawn there is the one the stage would draw here): nothing is generated twice,
and a killed study resumes like a killed curation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from limo_ray.config import RunConfig
from limo_ray.curate.chains import chain_store
from limo_ray.curate.context import CurateContext
from limo_ray.curate.generations import ATTEMPT_SCHEMA, GenerationStore
from limo_ray.curate.pipeline import run_curation
from limo_ray.curate.problem_table import read_problems, write_problems
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.records import Problem
from limo_ray.runfolder import settings_key

GENERATE_DIR = "generate"
PICKED_FILE = "picked.parquet"


@dataclass(frozen=True)
class PickedProblems(Stage):
    """The first stage of a study's generation: the problems it picked, read from the file it wrote."""

    name = "picked"
    problems_file: str
    sha256: str  # the file's content: what the later stages' keys chain from

    def inputs(self) -> list[str]:
        return [self.problems_file]

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        picked = read_problems(Path(self.problems_file))
        return StageResult(picked, [Decision(p.id, "kept", "picked") for p in picked], rows_in=len(picked))


def generation_stores(curate_dir: Path, config: RunConfig, stages: Sequence[Stage]) -> list[Path]:
    """The generation caches `stages` fill under a curate folder (the strong filter's, each chain model's)."""
    names = {stage.name for stage in stages}
    stores = [curate_dir / "strong_filter" / "generations"] if "strong_filter" in names else []
    if "chains" in names:
        stores += [chain_store(curate_dir, model).folder for model in config.curate.chains.models]
    return stores


def fill_from(target: Path, sources: Sequence[Path], problem_ids: set[str]) -> int:
    """Copy into the cache at `target` every attempt for `problem_ids` stored in the caches at `sources` (the
    same store in other run folders) that it lacks; returns how many were copied."""
    store = GenerationStore(target)
    wanted = pa.array(sorted(problem_ids), type=pa.string())
    found: dict[str, dict[str, Any]] = {}
    for source in sources:
        if not source.is_dir() or source.resolve() == target.resolve():
            continue
        for part in sorted(source.glob("part-*.parquet")):
            # Only the rows of these problems are decoded: a strong filter's cache can hold millions.
            table = pq.read_table(part, schema=ATTEMPT_SCHEMA, filters=pc.field("problem_id").isin(wanted))
            for row in table.to_pylist():
                if row["key"] not in store:
                    found.setdefault(row["key"], row)
    return store.append(found.values())


def generate(
    config: RunConfig,
    run_dir: Path,
    study_dir: Path,
    what: str,
    problems: Sequence[Problem],
    stages: Sequence[Stage],
    log: Callable[[str], None],
) -> Path:
    """Run `stages` on `problems` in the study's generation folder `what-<key>`; returns its curate folder.

    `run_dir` is the run folder whose curation (and earlier studies) hold attempts to reuse."""
    ordered = sorted(problems, key=lambda p: p.id)
    # "scoring" names a change of what a folder's quality stage scores (since it reads chains/drawn.json, the
    # chains of its own settings, not every chain copied in): folders scored before it are not reused.
    stage_settings = [[s.name, s.settings()] for s in stages]
    key = settings_key({"problems": [p.id for p in ordered], "stages": stage_settings, "scoring": "drawn-chains"})
    folder = study_dir / GENERATE_DIR / f"{what}-{key}"
    picked = folder / PICKED_FILE
    if not picked.is_file():
        write_problems(ordered, picked)
    ctx = CurateContext(run_dir=folder, cluster=config.cluster, log=log)
    ids = {p.id for p in ordered}
    others = [run_dir / "curate", *sorted((run_dir / "ablate").glob(f"*/{GENERATE_DIR}/*/curate"))]
    for target in generation_stores(ctx.curate_dir, config, stages):
        relative = target.relative_to(ctx.curate_dir)
        copied = fill_from(target, [other / relative for other in others], ids)
        if copied:
            log(f"[ablate] {what}: {copied} attempts reused from earlier runs in {target}")
    sha = hashlib.sha256(picked.read_bytes()).hexdigest()
    log(f"[ablate] {what}: {len(ordered)} problems -> {', '.join(s.name for s in stages)} in {folder}")
    run_curation(ctx, [PickedProblems(str(picked), sha), *stages])
    return ctx.curate_dir
