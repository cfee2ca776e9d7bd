"""The curation pipeline: an ordered list of stages built from the run's config, each skipped when complete.

`curation_stages` and `random_control_stages` are the one place where config keys become stage settings; a
stage reads nothing else. `run_curation` runs a list in order and can stop after any stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from limo_ray.config import RunConfig
from limo_ray.curate.balance import Balance
from limo_ray.curate.baseline import RandomSample, RandomSelect
from limo_ray.curate.cascade import BandRule, WeakRule
from limo_ray.curate.chains import Chains
from limo_ray.curate.context import CurateContext
from limo_ray.curate.decontaminate import Decontaminate
from limo_ray.curate.dedup import Dedup
from limo_ray.curate.export import Export
from limo_ray.curate.filters import StrongFilter, WeakFilter
from limo_ray.curate.ingest import Ingest
from limo_ray.curate.ledger import rebuild_ledger
from limo_ray.curate.quality_stage import Quality
from limo_ray.curate.select import Select
from limo_ray.curate.stage import ROOT_KEY, Stage, StageOutcome, run_stage
from limo_ray.engine import engine_spec
from limo_ray.errors import LimoError
from limo_ray.records import Problem

STAGE_NAMES: tuple[str, ...] = (
    "ingest",
    "dedup",
    "decontaminate",
    "weak_filter",
    "strong_filter",
    "balance",
    "chains",
    "quality",
    "select",
    "export",
)


def curation_stages(config: RunConfig, until: str | None = None) -> list[Stage]:
    """ingest -> dedup -> decontaminate -> weak_filter -> strong_filter -> balance -> chains -> quality -> select
    -> export, built up to and including `until` (so no later stage's models are looked at)."""
    return [build_stage(config, name) for name in _through(STAGE_NAMES, until)]


def build_stage(config: RunConfig, name: str) -> Stage:
    """The curation stage `name` with its settings from `config`."""
    curate = config.curate
    builders = {
        "ingest": lambda: Ingest(curate.pool),
        "dedup": lambda: Dedup(curate.dedup, seed=config.seed),
        "decontaminate": lambda: Decontaminate(curate.decontaminate, config.benchmarks),
        "weak_filter": lambda: WeakFilter(
            engine_spec(config, curate.weak.model), tuple(curate.weak.rounds), curate.weak.sampling,
            WeakRule(curate.weak.attempts),
        ),
        "strong_filter": lambda: StrongFilter(
            engine_spec(config, curate.strong.model), tuple(curate.strong.rounds), curate.strong.sampling,
            BandRule(curate.strong.samples, curate.strong.keep_min, curate.strong.keep_max),
        ),
        "balance": lambda: Balance(curate.balance, curate.dedup, seed=config.seed),
        "chains": lambda: _chains(config),
        "quality": lambda: Quality(curate.quality, tuple(curate.chains.models)),
        "select": lambda: Select(curate.select.size, tuple(curate.chains.models)),
        "export": lambda: Export(config.prompt.system),
    }  # fmt: skip
    if name not in builders:
        raise LimoError(f"{name!r} is not a curation stage (stages: {', '.join(STAGE_NAMES)})")
    return builders[name]()


def random_control_stages(config: RunConfig, size: int) -> list[Stage]:
    """The control: ingest -> dedup -> decontaminate -> random_sample -> chains -> quality -> select (random
    order) -> export, on the same settings as the curated run's stages of the same names."""
    models = tuple(config.curate.chains.models)
    return [
        *(build_stage(config, name) for name in ("ingest", "dedup", "decontaminate")),
        RandomSample(size, seed=config.seed),
        build_stage(config, "chains"),
        build_stage(config, "quality"),
        RandomSelect(size, models, seed=config.seed),
        build_stage(config, "export"),
    ]


def _chains(config: RunConfig) -> Chains:
    chains = config.curate.chains
    return Chains(tuple(engine_spec(config, m) for m in chains.models), chains.per_model, chains.sampling)


def _through(names: Sequence[str], until: str | None) -> Sequence[str]:
    if until is None:
        return names
    if until not in names:
        raise LimoError(f"--until {until!r} is not a curation stage (stages: {', '.join(names)})")
    return names[: names.index(until) + 1]


def stage_inputs(stages: Sequence[Stage]) -> list[str]:
    """Every file and model the stages read from outside the run folder."""
    return [path for stage in stages for path in stage.inputs()]


def run_curation(ctx: CurateContext, stages: Sequence[Stage]) -> list[StageOutcome]:
    """Run the stages in order, skipping complete ones."""
    names = [s.name for s in stages]
    outcomes: list[StageOutcome] = []
    problems: list[Problem] = []
    upstream = ROOT_KEY
    try:
        for stage in stages:
            outcome = run_stage(ctx, stage, problems, upstream)
            if not outcome.skipped:
                rebuild_ledger(ctx.curate_dir, names)
            outcomes.append(outcome)
            problems, upstream = outcome.kept, outcome.config_hash
    finally:
        ctx.engines.close()  # the engines' CPUs/GPUs go back to the cluster (training may come next)
    rebuild_ledger(ctx.curate_dir, names)
    return outcomes
