"""`limo`: the command line of limo-ray.

User errors (a bad config key, a missing file, a malformed input) print one line, `limo: error: ...`, and
exit with status 2; a traceback means a bug in limo-ray.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from limo_ray.config import RunConfig, load_config, preset_names
from limo_ray.errors import LimoError

app = typer.Typer(
    name="limo",
    help=(
        "limo-ray: the LIMO recipe on Ray. Curate a few hundred hard problems with excellent reasoning chains "
        "from a large pool, fine-tune on them with DeepSpeed ZeRO-3, then serve and evaluate the checkpoint.\n\n"
        "Every command takes --config (a preset such as `tiny` or `limo-32b`, or a YAML file) and "
        "--set key.path=value overrides."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(
    help="Show or check a run config (presets: " + ", ".join(preset_names()) + ").", no_args_is_help=True
)
benchmarks_app = typer.Typer(help="The registry of evaluation sets.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(benchmarks_app, name="benchmarks")
toy_app = typer.Typer(
    help="The built-in toy world: generated problems and tiny models trained on CPU.", no_args_is_help=True
)
app.add_typer(toy_app, name="toy")

ConfigOption = Annotated[
    str, typer.Option("--config", "-c", help="Preset name (tiny, limo-32b) or path to a YAML config.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a setting, type-checked: --set train.epochs=3 (repeatable)."),
]


RunDirOption = Annotated[
    Path | None, typer.Option("--run-dir", help="Run folder [runs/<config name>]; re-running resumes it.")
]


def _load(config: str, overrides: list[str] | None) -> RunConfig:
    return load_config(config, overrides or [])


def _run_dir(config: RunConfig, run_dir: Path | None) -> Path:
    from limo_ray.runfolder import default_run_dir

    return run_dir if run_dir is not None else default_run_dir(config)


def _path_resolver(config: RunConfig) -> Callable[[str], str]:
    """`toy:<name>` paths point into the toy world (built on first use); every other path is used as is."""

    def resolve(path: str) -> str:
        if path.startswith("toy:"):
            from limo_ray.toy import resolve_toy_path

            return resolve_toy_path(path, config.toy)
        return path

    return resolve


@config_app.command("show")
def config_show(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Print the resolved config (preset + overrides) as YAML."""
    typer.echo(_load(config, overrides).to_yaml(), nl=False)


@config_app.command("validate")
def config_validate(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Check a config: unknown keys and wrong types are errors that name the key and the file."""
    resolved = _load(config, overrides)
    typer.echo(f"ok: config {resolved.name!r} is valid (hash {resolved.content_hash()})")


@app.command("curate")
def curate_command(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    until: Annotated[
        str | None, typer.Option(help="Stop after this stage (ingest, dedup, decontaminate, weak_filter, ...).")
    ] = None,
    pool: Annotated[
        list[str] | None, typer.Option("--pool", help="Pool file/glob/URI, replaces curate.pool.sources (repeatable).")
    ] = None,
) -> None:
    """Curate a pool: ingest, dedup, decontaminate, weak filter, strong filter (more stages to come).

    Each stage writes curate/<stage>/ with a manifest; curate/ledger.parquet records every decision. Re-running
    with the same run folder skips finished stages and draws only the samples that are missing.
    """
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.pipeline import run_curation

    extra = [f"curate.pool.sources={json.dumps(pool)}"] if pool else []
    resolved = _load(config, [*(overrides or []), *extra])
    folder = _run_dir(resolved, run_dir)
    ctx = CurateContext(config=resolved, run_dir=folder, resolve_path=_path_resolver(resolved))
    outcomes = run_curation(ctx, until=until)
    last = outcomes[-1]
    typer.echo(
        f"curate: {last.name} complete, {len(last.kept)} problems kept; ledger: {ctx.curate_dir / 'ledger.parquet'}"
    )


@app.command("plan")
def plan_command(
    config: ConfigOption = "limo-32b",
    overrides: SetOption = None,
    pool_size: Annotated[int | None, typer.Option(help="Problems in the pool [100,000, or the toy pool].")] = None,
    assume: Annotated[
        list[str] | None,
        typer.Option("--assume", help="Override a planning assumption: --assume strong_survival=0.05 (repeatable)."),
    ] = None,
) -> None:
    """Print what a run will ask of the cluster: GPUs and actors per stage, tokens, memory, wall time, cost.

    Refuses impossible plans (a model that does not fit its tensor-parallel group, training that does not fit
    GPU memory) with the numbers. Every assumption is printed with the plan and can be overridden.
    """
    from dataclasses import fields, replace

    from limo_ray.config import parse_yaml
    from limo_ray.plan import DEFAULT_POOL_SIZE, Assumptions, format_plan, make_plan

    resolved = _load(config, overrides)
    known = {f.name for f in fields(Assumptions)}
    changes = {}
    for item in assume or []:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise LimoError(f"--assume {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}")
        changes[key] = parse_yaml(raw, f"--assume {key}")
    assumptions = replace(Assumptions(), **changes)
    typer.echo(format_plan(make_plan(resolved, assumptions, pool_size=pool_size or DEFAULT_POOL_SIZE)))


@app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit_command(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help="curate, train, eval or run (the whole job).")],
    address: Annotated[str, typer.Option(help="Ray job API, e.g. http://127.0.0.1:8265 (port-forwarded).")],
    config: ConfigOption = "limo-32b",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    working_dir: Annotated[Path, typer.Option(help="The limo-ray checkout to ship with the job.")] = Path("."),
    submission_id: Annotated[str | None, typer.Option(help="Job id [limo-STAGE-CONFIG-TIME].")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream logs; exit with the job's status.")] = False,
) -> None:
    """Submit a stage as a Ray job; extra options after the known ones go to the stage (e.g. --until dedup)."""
    from limo_ray import submit as jobs

    resolved = _load(config, overrides)
    stage_args = ["--config", config, *[a for o in overrides or [] for a in ("--set", o)]]
    if run_dir is not None:
        stage_args += ["--run-dir", str(run_dir)]
    submission = jobs.build_submission(resolved, stage, [*stage_args, *ctx.args], working_dir.resolve(), submission_id)
    job_id = jobs.submit(address, submission)
    typer.echo(f"submitted {job_id}: {submission.entrypoint}")
    if follow:
        status = jobs.follow(address, job_id, typer.echo)
        typer.echo(f"job {job_id} {status}")
        if status != "SUCCEEDED":
            raise typer.Exit(1)


@toy_app.command("build")
def toy_build(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    size: Annotated[str | None, typer.Option(help="full or test [the config's toy.size].")] = None,
    seed: Annotated[int | None, typer.Option(help="World seed [the config's toy.seed].")] = None,
) -> None:
    """Build the toy world (or find it in the cache, $LIMO_RAY_CACHE or ~/.cache/limo-ray) and print its paths."""
    import time

    from limo_ray.toy import build_toy_world

    resolved = _load(config, overrides)
    start = time.perf_counter()
    world = build_toy_world(size or resolved.toy.size, resolved.toy.seed if seed is None else seed)
    typer.echo(
        f"toy world {world.content_hash} ({world.size}, seed {world.seed}) ready in "
        f"{time.perf_counter() - start:.1f}s at {world.root}"
    )
    for name, path in [*world.models.items(), ("pool", world.pool), ("benchmark", world.benchmark)]:
        typer.echo(f"  toy:{name:10} {path}")


@app.command("grade")
def grade_command(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="A JSONL file, one record per line.")],
    response_field: Annotated[str, typer.Option(help="Field holding the model response.")] = "response",
    answer_field: Annotated[str, typer.Option(help="Field holding the gold answer.")] = "answer",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write graded records [INPUT.graded.jsonl]."),
    ] = None,
    mode: Annotated[str, typer.Option(help="auto | math | choice (auto: a one-letter gold is a choice).")] = "auto",
) -> None:
    """Grade responses against gold answers with the project grader.

    Writes each input record with `correct`, `extracted` and `grade_reason` added; records that cannot be
    graded (bad JSON, a missing field) go to OUTPUT.rejected.jsonl with a reason. Prints the accuracy.
    """
    from limo_ray.grading.batch import grade_jsonl

    if mode not in ("auto", "math", "choice"):
        raise LimoError(f"--mode must be auto, math or choice, not {mode!r}")
    out = output or input_path.with_name(input_path.name.removesuffix(".jsonl") + ".graded.jsonl")
    summary = grade_jsonl(input_path, out, response_field, answer_field, mode)  # type: ignore[arg-type]
    typer.echo(
        f"graded {summary.graded} records: {summary.correct} correct ({summary.accuracy:.1%}); "
        f"{summary.rejected} rejected -> {summary.rejected_path if summary.rejected else 'none'}; "
        f"output: {out}"
    )


@benchmarks_app.command("list")
def benchmarks_list(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """List registered benchmarks with their grading mode, paper decoding and the paper's LIMO score."""
    from limo_ray.benchmarks import BenchmarkRegistry

    resolved = _load(config, overrides)
    registry = BenchmarkRegistry.from_files(resolved.benchmarks.registry_files)
    for bench in registry.select("all"):
        decoding = (
            "greedy"
            if bench.decoding.temperature == 0
            else f"{bench.decoding.samples} samples at T={bench.decoding.temperature:g}"
        )
        limo = bench.paper.get("LIMO")
        typer.echo(
            f"{bench.name:14} {bench.grading:7} {decoding:22} LIMO {limo if limo is not None else '-':>5}  {bench.path}"
        )


@benchmarks_app.command("paper")
def benchmarks_paper(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Print the paper's results table (pass@1, %) as JSON."""
    from limo_ray.benchmarks import BenchmarkRegistry

    resolved = _load(config, overrides)
    typer.echo(json.dumps(BenchmarkRegistry.from_files(resolved.benchmarks.registry_files).paper_table(), indent=2))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    try:
        # Without standalone mode click returns a command's exit code (typer.Exit) instead of exiting.
        result = app(args=argv, prog_name="limo", standalone_mode=False)
    except LimoError as exc:
        typer.echo(f"limo: error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("limo: aborted", err=True)
        return 130
    except Exception as exc:  # click's usage errors, raised because standalone_mode is off
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
