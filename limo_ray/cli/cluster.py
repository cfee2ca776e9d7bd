"""The cluster's commands: what a run will ask of it (plan) and sending a stage to it as a Ray job (submit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from limo_ray.cli.app import app
from limo_ray.cli.options import ConfigOption, RunDirOption, SetOption, load
from limo_ray.errors import LimoError


@app.command("plan")
def plan_command(
    config: ConfigOption = "limo-32b",
    overrides: SetOption = None,
    pool_size: Annotated[int | None, typer.Option(help="Problems in the pool [100,000, or the toy pool].")] = None,
    assume: Annotated[
        list[str] | None,
        typer.Option("--assume", help="Override a planning assumption: --assume strong_survival=0.05 (repeatable)."),
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Place every stage with the real Ray scheduler on a local cluster shaped like the config's "
            "(logical GPUs; probes stand in for vLLM and NCCL) and print a table per stage.",
        ),
    ] = False,
    placement_timeout: Annotated[
        float, typer.Option(help="With --simulate: seconds a stage may wait to be placed before it fails.")
    ] = 60.0,
    ablate: Annotated[
        str | None,
        typer.Option(
            metavar="STUDY",
            help="Plan `limo ablate STUDY` instead of the run: its extra generation, one training per arm per "
            "repeat, its evaluation (the curation it starts from is `limo plan` alone).",
        ),
    ] = None,
    repeats: Annotated[int | None, typer.Option(help="With --ablate: repeats [ablate.repeats].")] = None,
) -> None:
    """Print what a run will ask of the cluster: GPUs and actors per stage, tokens, memory, wall time, cost.

    Refuses impossible plans (a model that does not fit its tensor-parallel group, training that does not fit
    GPU memory) with the numbers. Every assumption is printed with the plan and can be overridden.
    With --simulate, also walks the whole job's placements (each curation engine pool, the training worker
    group, Serve's replicas at min and max) through the real Ray scheduler, and exits non-zero naming the
    first stage that cannot be placed.

    With --ablate STUDY, plans that study of `limo ablate` on the run's curation instead.

    Example: `limo plan --config limo-32b --simulate` (or `limo plan --config limo-32b --ablate size`)
    """
    from dataclasses import fields, replace

    from limo_ray.config import parse_yaml
    from limo_ray.plan import DEFAULT_POOL_SIZE, Assumptions, format_plan, make_plan

    resolved = load(config, overrides)
    known = {f.name for f in fields(Assumptions)}
    changes = {}
    for item in assume or []:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise LimoError(f"--assume {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
        changes[key] = parse_yaml(raw, f"--assume {key}")
    assumptions = replace(Assumptions(), **changes)
    pool = pool_size or DEFAULT_POOL_SIZE
    if ablate is not None:
        from limo_ray.plan.ablate import make_study_plan

        if simulate:
            raise LimoError("plan: --simulate places the run's stages; drop it with --ablate")
        typer.echo(format_plan(make_study_plan(resolved, ablate, assumptions, pool_size=pool, repeats=repeats)))
        return
    if repeats is not None:
        raise LimoError("plan: --repeats is for --ablate STUDY")
    if not simulate:
        typer.echo(format_plan(make_plan(resolved, assumptions, pool_size=pool)))
        return
    from limo_ray.plan_simulation import format_simulation, simulate_job

    # The arithmetic's refusals are not consulted first: the scheduler itself must say what cannot be placed.
    report = simulate_job(resolved, timeout_s=placement_timeout, log=lambda line: typer.echo(line, err=True))
    typer.echo(format_simulation(report))
    if not report.ok:
        raise LimoError(f"plan --simulate: {report.failed_stage} cannot be placed: {report.error}")


@app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit_command(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help="curate, train, eval, run (the whole job) or ablate STUDY.")],
    address: Annotated[str, typer.Option(help="Ray job API, e.g. http://127.0.0.1:8265 (port-forwarded).")],
    config: ConfigOption = "limo-32b",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    working_dir: Annotated[Path, typer.Option(help="The limo-ray checkout to ship with the job.")] = Path("."),
    submission_id: Annotated[str | None, typer.Option(help="Job id [limo-STAGE[-STUDY]-CONFIG-TIME].")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream logs; exit with the job's status.")] = False,
) -> None:
    """Submit a stage as a Ray job; extra options after the known ones go to the stage (e.g. --until dedup).

    `limo submit ablate STUDY ...` runs `limo ablate STUDY` as a job, the study right after `ablate`.

    Example: `limo submit curate --address http://127.0.0.1:8265 --config limo-32b --follow --until dedup`"""
    from limo_ray import submit as jobs
    from limo_ray.console import submit_lines

    resolved = load(config, overrides)
    stage_args = ["--config", config, *[a for o in overrides or [] for a in ("--set", o)]]
    if run_dir is not None:
        stage_args += ["--run-dir", str(run_dir)]
    submission = jobs.build_submission(resolved, stage, stage_args, working_dir.resolve(), submission_id, ctx.args)
    job_id = jobs.submit(address, submission)
    typer.echo(f"submitted {job_id}: {submission.entrypoint}")
    for line in submit_lines(address, run_dir):
        typer.echo(line)
    if follow:
        status = jobs.follow(address, job_id, typer.echo)
        typer.echo(f"job {job_id} {status}")
        if status != "SUCCEEDED":
            raise typer.Exit(1)
