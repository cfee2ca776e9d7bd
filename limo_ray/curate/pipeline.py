"""The curation pipeline: an ordered list of stages, each skipped when complete, stoppable after any stage."""

from __future__ import annotations

import json
from collections.abc import Sequence

from limo_ray.curate.context import CurateContext
from limo_ray.curate.decontaminate import Decontaminate
from limo_ray.curate.dedup import Dedup
from limo_ray.curate.ingest import Ingest
from limo_ray.curate.ledger import rebuild_ledger
from limo_ray.curate.stage import Stage, StageOutcome, run_stage
from limo_ray.errors import LimoError
from limo_ray.records import Problem
from limo_ray.runfolder import write_resolved_config


def default_stages() -> list[Stage]:
    from limo_ray.curate.balance import Balance
    from limo_ray.curate.chains import Chains
    from limo_ray.curate.export import Export
    from limo_ray.curate.filters import StrongFilter, WeakFilter
    from limo_ray.curate.quality_stage import Quality
    from limo_ray.curate.select import Select

    return [
        Ingest(),
        Dedup(),
        Decontaminate(),
        WeakFilter(),
        StrongFilter(),
        Balance(),
        Chains(),
        Quality(),
        Select(),
        Export(),
    ]


def stage_names(stages: Sequence[Stage] | None = None) -> list[str]:
    return [s.name for s in (stages if stages is not None else default_stages())]


def _root_hash(ctx: CurateContext) -> str:
    """The start of the stage-hash chain: the run's name, plus what its indirect paths resolve to now.

    `toy:` paths name whatever toy world the current code builds (a content-hashed folder); a rebuilt world has
    other models and another pool, so no stage finished against the old one may be reused.
    """
    refs = sorted({*ctx.config.curate.pool.sources, *(m.path for m in ctx.config.models.values())})
    indirect = {ref: resolved for ref in refs if (resolved := ctx.resolve_path(ref)) != ref}
    return ctx.config.name if not indirect else f"{ctx.config.name}|{json.dumps(indirect, sort_keys=True)}"


def run_curation(
    ctx: CurateContext, until: str | None = None, stages: Sequence[Stage] | None = None
) -> list[StageOutcome]:
    """Run the stages in order (skipping complete ones) up to and including `until`."""
    stages = list(stages if stages is not None else default_stages())
    names = [s.name for s in stages]
    if until is not None and until not in names:
        raise LimoError(f"--until {until!r} is not a curation stage (stages: {', '.join(names)})")
    write_resolved_config(ctx.config, ctx.run_dir)
    outcomes: list[StageOutcome] = []
    problems: list[Problem] = []
    upstream = _root_hash(ctx)
    try:
        for stage in stages:
            outcome = run_stage(ctx, stage, problems, upstream)
            if not outcome.skipped:
                rebuild_ledger(ctx.curate_dir, names)
            outcomes.append(outcome)
            problems, upstream = outcome.kept, outcome.config_hash
            if stage.name == until:
                break
    finally:
        ctx.engines.close()  # the engines' CPUs/GPUs go back to the cluster (training may come next)
    rebuild_ledger(ctx.curate_dir, names)
    return outcomes
