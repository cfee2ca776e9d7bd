"""`limo plan --ablate STUDY`: what one `limo ablate` study will ask of the cluster, by the run plan's own rows.

A study starts from the run folder's finished curation, so the curation is not counted here (the run plan,
`limo plan` alone, estimates it); its funnel gives the sizes the study draws from (the curated set, the
problems the chains stage reached, the pools after the filters). Per repeat the study trains one student per
arm, each row the run plan's training estimate for that arm's samples and student, and evaluates every arm's
checkpoint plus each student's base model. On top comes the generation the curation did not do: the quality
study's extra chains per problem, the difficulty bins' chains, and the selection study's strong filter run
alone (for its strong-filter-only arm) and the chains of its random, weak-only and strong-only candidates.
Generation counts are upper bounds where the study reuses attempts the curation already drew (it never draws
one twice): a candidate the chains stage reached keeps its chains.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from limo_ray.ablate.arms import DIFFICULTY_OVERSAMPLE, SELECTION_ARMS, Arm
from limo_ray.ablate.study import arm_config, check_study, repeat_seeds
from limo_ray.config import RunConfig
from limo_ray.curate.baseline import OVERSAMPLE
from limo_ray.errors import LimoError
from limo_ray.plan.assumptions import DEFAULT_POOL_SIZE, Assumptions
from limo_ray.plan.engines import EngineAsk, engine_ask
from limo_ray.plan.estimate import (
    Plan,
    StagePlan,
    _chain_stages,
    _eval_stage,
    _gen_stage,
    _keep,
    _length,
    _strong_generations,
    _train_stage,
    make_plan,
)

__all__ = ["make_study_plan"]

EngineAskFor = Callable[[str], EngineAsk]  # an engine's ask by model name


@dataclass(frozen=True)
class Funnel:
    """The curation's sizes, as the run plan estimates them."""

    clean: int  # after dedup and decontamination: the pool random and difficulty draws come from
    hard: int  # kept by the weak filter
    band: int  # kept by the strong filter
    chained: int  # given to the chains stage (balanced)
    curated: int  # the curated set

    @classmethod
    def of(cls, plan: Plan) -> Funnel:
        weak, strong = plan.stage("curate.weak"), plan.stage("curate.strong")
        balance, select = plan.stage("curate.balance"), plan.stage("curate.select")
        return cls(weak.problems_in, weak.problems_out, strong.problems_out, balance.problems_out, select.problems_out)


@dataclass(frozen=True)
class PlannedArm:
    arm: Arm  # its name, repeat seed and student (no samples: the plan only counts them)
    samples: int


def make_study_plan(
    config: RunConfig,
    study: str,
    assumptions: Assumptions | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    repeats: int | None = None,
) -> Plan:
    """The plan of `limo ablate STUDY` for `config` (repeats: `ablate.repeats` unless given); raises LimoError for
    a study that cannot run (an unknown one, a backbone study with one student, training that does not fit)."""
    check_study(study)
    seeds = repeat_seeds(config, repeats)
    a = assumptions or Assumptions()
    run = make_plan(config, a, pool_size)
    funnel = Funnel.of(run)
    notes = [
        "the curation is not counted: the study starts from the run folder's finished one (`limo plan` without "
        "--ablate estimates it; `limo ablate` curates first when it is missing)",
        *run.notes,
    ]
    engines: dict[str, EngineAsk] = {}
    known = {e.name: e for e in run.engines}

    def engine(name: str) -> EngineAsk:
        if name not in engines:
            engines[name] = known.get(name) or engine_ask(config, name, run.device, run.gpu_memory_gib, a, notes)
        return engines[name]

    per_repeat = study_arms(config, study, funnel, notes)
    arms = [PlannedArm(Arm(name, seed, (), student), n) for seed in seeds for name, student, n in per_repeat]
    stages = study_generation(config, study, a, funnel, len(seeds), engine)
    memory = None
    for planned in arms:
        arm_run = arm_config(config, planned.arm)
        trained, arm_memory = _train_stage(arm_run, planned.samples, run.gpu_memory_gib, a, notes)
        detail = trained.detail
        if is_runs_own_training(config, study, planned, funnel):
            detail += "; limo run's own training: after `limo run` the study links its finished train/ (counted here)"
        stages.append(replace(trained, name=f"train[{planned.arm.label}]", detail=detail))
        memory = memory or arm_memory
    students = list(dict.fromkeys(p.arm.student for p in arms))
    for student in students:
        checkpoints = 1 + sum(p.arm.student == student for p in arms)  # the base model and each arm's checkpoint
        evaluated = arm_config(config, Arm(student, config.seed, (), student))
        stage = _eval_stage(evaluated, engine(student), replace(a, eval_checkpoints=checkpoints), notes)
        stages.append(stage if len(students) == 1 else replace(stage, name=f"eval[{student}]"))
    heading = (
        f"plan for `limo ablate {study}` with {config.name!r}: {len(per_repeat)} arms x {len(seeds)} repeat(s) = "
        f"{len(arms)} trainings"
    )
    return replace(
        run,
        stages=tuple(stages),
        engines=tuple(engines.values()),
        train_memory=memory,
        notes=tuple(dict.fromkeys(notes)),
        heading=heading,
    )


def study_arms(config: RunConfig, study: str, funnel: Funnel, notes: list[str]) -> list[tuple[str, str, int]]:
    """(arm, student, samples) of one repeat, at the sizes the study asks for (the curation may allow fewer)."""
    a, student = config.ablate, config.train.model
    if study == "quality":
        count = min(a.quality.problems, funnel.chained)
        notes.append(
            f"quality: up to {count:,} problems per level, those with a correct chain at every level "
            f"{', '.join(f'L{v}' for v in a.quality.levels)} (the plan cannot tell how many)"
        )
        return [(f"L{level}", student, count) for level in a.quality.levels]
    if study == "difficulty":
        return [(b.name, student, a.difficulty.problems) for b in a.difficulty.bins]
    if study == "size":
        if max(a.size.sizes) > funnel.curated:
            notes.append(
                f"size: the curated set is expected to hold ~{funnel.curated:,} samples, fewer than the largest size "
                f"{max(a.size.sizes):,}: the study refuses that (change ablate.size.sizes)"
            )
        return [(f"n{size}", student, size) for size in a.size.sizes]
    if study == "selection":
        size = selection_size(config, funnel)
        notes.append(
            "selection: most of ablate.strong's problems are ones the weak filter solves, which the strong filter "
            "settles in its first round more often than strong_early_stop assumes: likely an overestimate"
        )
        return [(name, student, size) for name in SELECTION_ARMS]
    students = a.backbone.students
    if len(students) < 2:
        raise LimoError("backbone: list two or more students (model names under `models:`) in ablate.backbone.students")
    return [(name, name, funnel.curated) for name in students]


def selection_size(config: RunConfig, funnel: Funnel) -> int:
    return min(config.ablate.selection.size or funnel.curated, funnel.curated)


def study_generation(
    config: RunConfig, study: str, a: Assumptions, funnel: Funnel, repeats: int, engine: EngineAskFor
) -> list[StagePlan]:
    """The rows of what the study generates beyond the curation (none for size and backbone)."""
    per_model = config.curate.chains.per_model
    reuse = "; chains the curation drew for a problem are reused: an upper bound"
    if study == "quality":
        wanted = config.ablate.quality.chains_per_model
        extra = 0 if wanted is None else wanted - per_model
        if extra <= 0:
            return []
        return _chain_stages(
            "ablate", config, a, engine, funnel.chained, extra, f" beyond the curation's {per_model} (reused)"
        )
    if study == "difficulty":
        d = config.ablate.difficulty
        candidates = len(d.bins) * math.ceil(d.problems * DIFFICULTY_OVERSAMPLE) * repeats
        return _chain_stages("ablate", config, a, engine, min(candidates, funnel.clean), per_model, reuse)
    if study != "selection":
        return []
    if funnel.band == 0:
        raise LimoError("selection: the curation is expected to keep no problem in the strong filter's band")
    wanted = math.ceil(selection_size(config, funnel) * OVERSAMPLE)
    # As `strong_probe` draws: enough that, at the band rate the curation saw, `wanted` land in the band.
    probe = min(funnel.clean, math.ceil(wanted * funnel.clean / funnel.band) * repeats)
    measured = _keep(probe, funnel.hard / funnel.clean)  # passed the weak filter: the curation measured them
    stages = [strong_alone(config, a, engine, probe - measured, measured, _keep(probe, funnel.band / funnel.clean))]
    # The random, weak-only and strong-only arms' candidates.
    candidates = min(funnel.clean, len(SELECTION_ARMS[1:]) * wanted * repeats)
    return stages + _chain_stages("ablate", config, a, engine, candidates, per_model, reuse)


def strong_alone(
    config: RunConfig, a: Assumptions, engine: EngineAskFor, problems: int, reused: int, in_band: int
) -> StagePlan:
    """The strong filter on the selection study's probe, without the weak filter before it."""
    strong = config.curate.strong
    length = _length(strong.model, a.strong_response_tokens, strong.sampling, a)
    return _gen_stage(
        "ablate.strong",
        engine(strong.model),
        config,
        a,
        n_in=problems,
        n_out=in_band,
        generations=_strong_generations(problems, strong, a),
        length=length,
        detail=f"the strong-filter-only arm's probe: {problems + reused:,} problems, {reused:,} of them measured by "
        f"the curation (reused); {strong.samples} samples in rounds {strong.rounds}; {length:,} tokens per response",
    )


def is_runs_own_training(config: RunConfig, study: str, planned: PlannedArm, funnel: Funnel) -> bool:
    """Whether the arm is what `limo run` trained: the whole curated set, the config's student and seed."""
    arm = planned.arm
    if study not in ("size", "selection", "backbone") or (study == "selection" and arm.name != "curated"):
        return False
    return planned.samples == funnel.curated and arm.student == config.train.model and arm.seed == config.seed
