"""`limo ablate STUDY`: one ablation of the LIMO recipe, from a run folder's curation, by `limo run`'s own code.

    <run>/ablate/<study>/arms/<arm>/seed-<s>.jsonl   each arm's dataset (LIMO format), one per repeat
    <run>/ablate/<study>/arms.json                    the arms: name, seed, student, samples, file
    <run>/ablate/<study>/generate/<what>-<key>/       the curation stages the study ran beyond the curation's
    <run>/ablate/<study>/runs/<arm>-s<seed>/train/    each arm's training
    <run>/ablate/<study>/eval/                        every arm's checkpoint and the base student(s), evaluated
    <run>/ablate/<study>/summary.md, summary.json, accuracy.png

The arms come from the run folder's finished curation (`limo run` or `limo curate`); when it is not finished,
the curation runs first (its finished stages are skipped, as `limo curate` does). Training is `run_training`
and evaluation `evaluate_checkpoints`, as in `limo run`; each skips what is complete, so the same command
resumes a killed study: a finished arm is never trained again, and no cached answer is asked again.
Repeats use seeds `seed, seed + 1, ...` for the arms' draws and for training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limo_ray.ablate import STUDIES
from limo_ray.ablate import arms as build
from limo_ray.ablate.arms import Arm
from limo_ray.ablate.source import Curation, kept_by, read_curation
from limo_ray.config import RunConfig
from limo_ray.curate.stage import Stage, stage_hash
from limo_ray.errors import LimoError
from limo_ray.runfolder import is_complete, write_json_atomic, write_jsonl_atomic, write_resolved_config

ABLATE_DIR = "ablate"
ARMS_DIR, ARMS_INDEX, RUNS_DIR = "arms", "arms.json", "runs"
# Where a study may stop: after writing the arms' datasets, or after training them.
UNTIL: tuple[str, ...] = ("arms", "train")


def check_study(study: str) -> str:
    if study not in STUDIES:
        raise LimoError(f"unknown study {study!r}: the studies are {', '.join(STUDIES)}")
    return study


def check_until(until: str | None) -> str | None:
    if until is not None and until not in UNTIL:
        raise LimoError(f"--until {until!r}: stop after one of {', '.join(UNTIL)}")
    return until


def study_folder(run_dir: Path, study: str) -> Path:
    return Path(run_dir) / ABLATE_DIR / study


def repeat_seeds(config: RunConfig, repeats: int | None) -> list[int]:
    count = config.ablate.repeats if repeats is None else repeats
    if count < 1:
        raise LimoError(f"--repeats must be 1 or more, not {count}")
    return [config.seed + r for r in range(count)]


@dataclass
class StudyResult:
    study: str
    folder: Path
    arms: list[Arm]
    datasets: dict[str, Path]  # arm label -> its dataset file
    trained: dict[str, Any] = field(default_factory=dict)  # arm label -> TrainResult
    summary: Path | None = None


def run_study(
    config: RunConfig,
    run_dir: Path,
    study: str,
    repeats: int | None = None,
    until: str | None = None,
    log: Callable[[str], None] = print,
) -> StudyResult:
    """Build the study's arms from the run folder's curation, train each, evaluate all, write the summary.

    `config` is resolved (no `toy:` references left): the CLI's entry step did that."""
    check_study(study)
    check_until(until)
    run_dir = Path(run_dir).resolve()
    seeds = repeat_seeds(config, repeats)
    folder = study_folder(run_dir, study)
    curation = ensure_curation(config, run_dir, log)
    log(f"[ablate] {study}: arms for seeds {', '.join(map(str, seeds))} -> {folder / ARMS_DIR}")
    arms = build_arms(config, run_dir, curation, study, seeds, log)
    datasets = write_arms(folder, arms)
    result = StudyResult(study, folder, arms, datasets)
    if until == "arms":
        return result
    result.trained = train_arms(config, folder, arms, datasets, log, reuse=run_dir)
    if until == "train":
        return result
    from limo_ray.ablate.summary import write_study_summary
    from limo_ray.run import evaluate_checkpoints

    checkpoints = study_checkpoints(config, arms, result.trained)
    log(f"[ablate] evaluate {len(checkpoints)} checkpoints on {', '.join(config.eval.benchmarks)}")
    evaluate_checkpoints(config, checkpoints, folder, progress=log)
    result.summary = write_study_summary(config, study, folder, arms, datasets, checkpoints)
    return result


def ensure_curation(config: RunConfig, run_dir: Path, log: Callable[[str], None]) -> Curation:
    """The run folder's finished curation, made by `config`'s stages; when it is not finished, the curation runs
    first (its finished stages skipped; one finished with other settings is refused by name, as `limo curate`
    refuses it)."""
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.pipeline import curation_stages, run_curation

    stages = curation_stages(config)
    if not is_complete(run_dir / "curate" / stages[-1].name, curation_key(stages)):
        log(f"[ablate] curation is not finished in {run_dir / 'curate'}: curating first")
        write_resolved_config(config, run_dir)
        run_curation(CurateContext(run_dir=run_dir, cluster=config.cluster, log=log), stages)
    return read_curation(run_dir / "curate")


def curation_key(stages: Sequence[Stage]) -> str:
    """The key the last stage's manifest carries when these stages made it (each key chains the one before)."""
    from limo_ray.curate.pipeline import ROOT_KEY

    key = ROOT_KEY
    for stage in stages:
        key = stage_hash(key, stage)
    return key


# ----------------------------------------------------------------------------------------------- arms


def build_arms(
    config: RunConfig, run_dir: Path, curation: Curation, study: str, seeds: Sequence[int], log: Callable[[str], None]
) -> list[Arm]:
    """Every arm of every repeat, generating the chains (or strong-filter samples) the curation lacks."""
    a = config.ablate
    student = config.train.model
    source = build.ArmSource(curation, config.prompt.system, tuple(config.curate.chains.models), student)
    generation = StudyGeneration(config, run_dir, study_folder(run_dir, study), curation, log)
    if study == "size":
        return [arm for s in seeds for arm in build.size_arms(curation, sizes=a.size.sizes, seed=s, student=student)]
    if study == "backbone":
        students = a.backbone.students
        return [arm for s in seeds for arm in build.backbone_arms(curation, students=students, seed=s)]
    if study == "quality":
        scored = curation.scored
        per_model = a.quality.chains_per_model
        if per_model is not None and per_model != config.curate.chains.per_model:
            pool = kept_by(curation.ledger, "balance")  # every problem the chains stage was given
            scored = generation.scored_chains(pool, per_model)
        count = a.quality.problems
        return [
            arm
            for s in seeds
            for arm in build.quality_arms(source, scored, count=count, seed=s, levels=a.quality.levels)
        ]
    if study == "difficulty":
        per_arm, bins = a.difficulty.problems, a.difficulty.bins
        candidates = {s: build.difficulty_candidates(curation, bins, per_arm=per_arm, seed=s) for s in seeds}
        scored = generation.scored_chains(_union(candidates))
        return [
            arm for s in seeds for arm in build.difficulty_arms(source, candidates[s], scored, per_arm=per_arm, seed=s)
        ]
    size = build.selection_size(curation, a.selection.size)
    probes = {s: build.strong_probe(curation, size=size, seed=s) for s in seeds}
    in_band = generation.strong_band(sorted({p for ids in probes.values() for p in ids}))
    candidates = {
        s: {
            **build.selection_candidates(curation, size=size, seed=s),
            "strong_only": build.strong_only_candidates(probes[s], in_band, size=size),
        }
        for s in seeds
    }
    scored = generation.scored_chains(_union(candidates))
    return [arm for s in seeds for arm in build.selection_arms(source, candidates[s], scored, size=size, seed=s)]


def _union(candidates: Mapping[int, Mapping[str, Sequence[str]]]) -> list[str]:
    return sorted({pid for by_arm in candidates.values() for ids in by_arm.values() for pid in ids})


@dataclass(frozen=True)
class StudyGeneration:
    """Where a study runs the curation stages its arms need beyond the curation's (under `<study>/generate/`)."""

    config: RunConfig
    run_dir: Path
    folder: Path
    curation: Curation
    log: Callable[[str], None]

    def scored_chains(self, problem_ids: Sequence[str], per_model: int | None = None) -> list[dict[str, Any]]:
        """The scored chains of `problem_ids`, by the curation's chains and quality stages (its chains reused)."""
        from limo_ray.curate.pipeline import build_stage
        from limo_ray.curate.quality_stage import read_scored_chains

        chains = build_stage(self.config, "chains")
        if per_model is not None:
            chains = dataclasses.replace(chains, per_model=per_model)
        curate_dir = self._generate("chains", problem_ids, [chains, build_stage(self.config, "quality")])
        return read_scored_chains(curate_dir)

    def strong_band(self, problem_ids: Sequence[str]) -> set[str]:
        """Which of `problem_ids` the strong filter keeps (its band), measured alone (no weak filter before it)."""
        from limo_ray.curate.pipeline import build_stage
        from limo_ray.curate.stage import read_decisions

        curate_dir = self._generate("strong", problem_ids, [build_stage(self.config, "strong_filter")])
        decisions = read_decisions(curate_dir / "strong_filter" / "decisions.parquet")
        return {d["problem_id"] for d in decisions if d["decision"] == "kept"}

    def _generate(self, what: str, problem_ids: Sequence[str], stages: Sequence[Stage]) -> Path:
        from limo_ray.ablate.generate import generate

        problems = [self.curation.problems[pid] for pid in problem_ids]
        return generate(self.config, self.run_dir, self.folder, what, problems, stages, self.log)


def write_arms(folder: Path, arms: Sequence[Arm]) -> dict[str, Path]:
    """Each arm's dataset (`arms/<arm>/seed-<s>.jsonl`) and the index `arms.json`; returns label -> file.

    The same arms give the same bytes, so a re-run leaves every training's dataset key as it was."""
    files: dict[str, Path] = {}
    index = []
    for arm in arms:
        path = folder / ARMS_DIR / arm.name / f"seed-{arm.seed}.jsonl"
        write_jsonl_atomic(path, [s.to_row() for s in arm.samples])
        files[arm.label] = path
        index.append(
            {
                "arm": arm.name,
                "seed": arm.seed,
                "label": arm.label,
                "student": arm.student,
                "samples": len(arm.samples),
                "dataset": str(path),
            }
        )
    write_json_atomic(folder / ARMS_INDEX, index)
    return files


# ----------------------------------------------------------------------------------------------- train, eval


def arm_config(config: RunConfig, arm: Arm) -> RunConfig:
    """The run config an arm trains under: the repeat's seed, the arm's student."""
    train = config.train.model_copy(update={"model": arm.student})
    return config.model_copy(update={"seed": arm.seed, "train": train})


def arm_storage(config: RunConfig, folder: Path, arm: Arm) -> str | None:
    """Where the arm's Ray Train checkpoints go: under train.storage_path when one is set (shared by every arm
    otherwise: their runs would collide), else the arm's own run folder (run_training's default)."""
    base = config.train.storage_path
    return None if base is None else f"{base.rstrip('/')}/{ABLATE_DIR}/{folder.name}/{arm.label}"


def train_arms(
    config: RunConfig,
    folder: Path,
    arms: Sequence[Arm],
    datasets: Mapping[str, Path],
    log: Callable[[str], None],
    reuse: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune each arm's student on its dataset in `runs/<label>/`; a finished training is skipped.

    `reuse`: a run folder whose finished `train/` is taken for an arm with the same training key (the curated set,
    the config's student and seed: what `limo run` trained), linked as the arm's `train/` instead of trained again.
    """
    from limo_ray.train import run_training
    from limo_ray.train.run import training_key

    results = {}
    for number, arm in enumerate(arms, start=1):
        run_dir = folder / RUNS_DIR / arm.label
        trained = arm_config(config, arm)
        model_path = trained.models[arm.student].path
        own = run_dir / "train"
        if reuse is not None and not own.exists():
            earlier = reuse / "train"
            if is_complete(earlier, training_key(trained, datasets[arm.label], model_path)):
                own.parent.mkdir(parents=True, exist_ok=True)
                own.symlink_to(earlier.resolve(), target_is_directory=True)
                log(f"[ablate] train {arm.label}: the same training as {earlier} (dataset, student, seed): reused")
        log(f"[ablate] train {arm.label} ({number}/{len(arms)}): {len(arm.samples)} samples -> {own}")
        result = run_training(
            trained,
            run_dir,
            datasets[arm.label],
            model_path,
            storage_path=arm_storage(config, folder, arm),
            progress=log,
        )
        log(f"[ablate] train {arm.label}: {result.status()}")
        if not result.complete:
            raise LimoError(
                f"training of arm {arm.label} stopped at step {result.steps}/{result.total_steps}: re-run "
                "`limo ablate` to resume it"
            )
        results[arm.label] = result
    return results


def base_name(student: str) -> str:
    return f"{student}-base"


def study_checkpoints(config: RunConfig, arms: Sequence[Arm], trained: Mapping[str, Any]) -> dict[str, str]:
    """{served name: path}: every student's base model, then each arm's checkpoint."""
    students = list(dict.fromkeys(arm.student for arm in arms))
    bases = {base_name(s): config.models[s].path for s in students}
    return {**bases, **{arm.label: str(trained[arm.label].checkpoint) for arm in arms}}
