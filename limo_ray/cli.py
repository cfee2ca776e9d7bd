"""`limo`: the command line of limo-ray.

User errors (a bad config key, a missing file, a malformed input) print one line, `limo: error: ...`, and
exit with status 2; a traceback means a bug in limo-ray.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from limo_ray.config import RunConfig, load_config, preset_names
from limo_ray.errors import LimoError
from limo_ray.runfolder import run_lock

app = typer.Typer(
    name="limo",
    help=(
        "limo-ray: the LIMO recipe on Ray. Curate a few hundred hard problems with excellent reasoning chains "
        "from a large pool, fine-tune on them with DeepSpeed ZeRO-3, then serve and evaluate the checkpoint.\n\n"
        "Every command takes --config (a preset such as `tiny` or `limo-32b`, or a YAML file) and "
        "--set key.path=value overrides.\n\n"
        "Example: `limo run --config tiny --run-dir runs/demo` (the whole job on the toy world, what `make demo` "
        "runs); `limo COMMAND --help` shows each command with an example."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(
    help="Show or check a run config (presets: " + ", ".join(preset_names()) + ").\n\n"
    "Example: `limo config show --config limo-32b --set train.epochs=3`",
    no_args_is_help=True,
)
benchmarks_app = typer.Typer(
    help="The registry of evaluation sets.\n\nExample: `limo benchmarks list`", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(benchmarks_app, name="benchmarks")
toy_app = typer.Typer(
    help="The built-in toy world: generated problems and tiny models trained on CPU.\n\n"
    "Example: `limo toy build --size test`",
    no_args_is_help=True,
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
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Stream Ray's and vLLM's logs to the console (else RUN_DIR/logs/).")
]


def _load(config: str, overrides: list[str] | None) -> RunConfig:
    return load_config(config, overrides or [])


def _run_dir(config: RunConfig, run_dir: Path | None) -> Path:
    from limo_ray.runfolder import default_run_dir

    return run_dir if run_dir is not None else default_run_dir(config)


def _resolved(
    config: RunConfig, reads: Callable[[RunConfig], Iterable[str]] | None = None, extra: Iterable[str] = ()
) -> RunConfig:
    """The entry step: `toy:` references -> paths, building the toy world only if the command reads it."""
    from limo_ray.toy.references import resolve_references

    return resolve_references(config, reads, extra=extra)


@config_app.command("show")
def config_show(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Print the resolved config (preset + overrides) as YAML.

    Example: `limo config show --config limo-32b --set train.epochs=3`"""
    typer.echo(_load(config, overrides).to_yaml(), nl=False)


@config_app.command("validate")
def config_validate(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Check a config: unknown keys and wrong types are errors that name the key and the file.

    Example: `limo config validate --config my.yaml --set curate.select.size=500`"""
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
    """Curate a pool: ingest, dedup, decontaminate, weak/strong filters, balance, chains, quality, select, export.

    Each stage writes curate/<stage>/ with a manifest; curate/ledger.parquet records every decision. Re-running
    with the same run folder skips finished stages and draws only the samples that are missing.

    Example: `limo curate --config tiny --until strong_filter` (the toy pool, into runs/tiny).
    """
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.pipeline import curation_stages, run_curation, stage_inputs
    from limo_ray.runfolder import write_resolved_config

    extra = [f"curate.pool.sources={json.dumps(pool)}"] if pool else []
    loaded = _load(config, [*(overrides or []), *extra])
    curation_stages(loaded, until)  # a wrong --until is an error before anything is built
    resolved = _resolved(loaded, lambda c: stage_inputs(curation_stages(c, until)))
    folder = _run_dir(resolved, run_dir)
    ctx = CurateContext(run_dir=folder, cluster=resolved.cluster)
    with run_lock(folder):
        write_resolved_config(resolved, folder)
        outcomes = run_curation(ctx, curation_stages(resolved, until))
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
) -> None:
    """Print what a run will ask of the cluster: GPUs and actors per stage, tokens, memory, wall time, cost.

    Refuses impossible plans (a model that does not fit its tensor-parallel group, training that does not fit
    GPU memory) with the numbers. Every assumption is printed with the plan and can be overridden.
    With --simulate, also walks the whole job's placements (each curation engine pool, the training worker
    group, Serve's replicas at min and max) through the real Ray scheduler, and exits non-zero naming the
    first stage that cannot be placed.

    Example: `limo plan --config limo-32b --simulate`
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
    if not simulate:
        typer.echo(format_plan(make_plan(resolved, assumptions, pool_size=pool_size or DEFAULT_POOL_SIZE)))
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
    stage: Annotated[str, typer.Argument(help="curate, train, eval or run (the whole job).")],
    address: Annotated[str, typer.Option(help="Ray job API, e.g. http://127.0.0.1:8265 (port-forwarded).")],
    config: ConfigOption = "limo-32b",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    working_dir: Annotated[Path, typer.Option(help="The limo-ray checkout to ship with the job.")] = Path("."),
    submission_id: Annotated[str | None, typer.Option(help="Job id [limo-STAGE-CONFIG-TIME].")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Stream logs; exit with the job's status.")] = False,
) -> None:
    """Submit a stage as a Ray job; extra options after the known ones go to the stage (e.g. --until dedup).

    Example: `limo submit curate --address http://127.0.0.1:8265 --config limo-32b --follow --until dedup`"""
    from limo_ray import submit as jobs
    from limo_ray.console import submit_lines

    resolved = _load(config, overrides)
    stage_args = ["--config", config, *[a for o in overrides or [] for a in ("--set", o)]]
    if run_dir is not None:
        stage_args += ["--run-dir", str(run_dir)]
    submission = jobs.build_submission(resolved, stage, [*stage_args, *ctx.args], working_dir.resolve(), submission_id)
    job_id = jobs.submit(address, submission)
    typer.echo(f"submitted {job_id}: {submission.entrypoint}")
    for line in submit_lines(address, run_dir):
        typer.echo(line)
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
    """Build the toy world (or find it in the cache, $LIMO_RAY_CACHE or ~/.cache/limo-ray) and print its paths.

    Example: `limo toy build --size test`"""
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


@toy_app.command("report")
def toy_report(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    size: Annotated[str | None, typer.Option(help="full or test [the config's toy.size].")] = None,
    seed: Annotated[int | None, typer.Option(help="World seed [the config's toy.seed].")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
) -> None:
    """Measure the toy world's calibration (vLLM in Ray Data, project grader) and check it against its bounds.

    Example: `limo toy report --size test`"""
    import json

    from limo_ray.toy import build_toy_world, calibration_report

    resolved = _load(config, overrides)
    world = build_toy_world(size or resolved.toy.size, resolved.toy.seed if seed is None else seed)
    typer.echo(f"measuring toy world {world.content_hash} on its benchmark ({world.benchmark})")
    report = calibration_report(world, cluster=resolved.cluster, log=typer.echo)
    typer.echo(report.format())
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"world": world.content_hash, **report.to_dict()}, indent=2) + "\n")
    if not report.passed:
        raise typer.Exit(1)


@app.command("train")
def train_command(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    dataset: Annotated[
        Path | None,
        typer.Option(help="LIMO-format jsonl (id, system, problem, response, answer) [curate/dataset.jsonl]."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Base model folder or hub name [models.<train.model>.path].")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the DeepSpeed config, steps and memory plan; start nothing.")
    ] = False,
) -> None:
    """Full-parameter SFT with DeepSpeed ZeRO-3 on Ray Train; resumes from the last checkpoint in the run folder.

    Writes train/metrics.jsonl (step, epoch, loss, lr, tokens_per_s), resumable checkpoints, and a consolidated HF
    checkpoint in train/checkpoint/ (safetensors, tokenizer, chat template) that transformers and vLLM load.

    Example: `limo train --config tiny --run-dir runs/demo` (after `limo curate` there), or
    `limo train --config limo-32b --dry-run` for the memory plan.
    """
    from limo_ray.train import describe_training_layout, format_training_layout, run_training
    from limo_ray.train.run import check_memory

    loaded = _load(config, overrides)
    resolved = _resolved(loaded, lambda c: [model or c.models[c.train.model].path])
    folder = _run_dir(resolved, run_dir)
    model_path = model or resolved.models[resolved.train.model].path
    if dry_run:
        typer.echo(format_training_layout(describe_training_layout(resolved, model_path)))
        check_memory(resolved)
        return
    data = dataset or folder / "curate" / "dataset.jsonl"
    if not data.is_file():
        raise LimoError(f"no training data at {data}: run `limo curate` first, or pass --dataset FILE")
    with run_lock(folder):
        result = run_training(resolved, folder, data, model_path)
    typer.echo(f"train {result.status()}; metrics {result.metrics_path}")


CheckpointOption = Annotated[
    list[str] | None,
    typer.Option(
        "--checkpoint",
        help="NAME=PATH (or PATH, named after its folder): a local folder or hub name to serve (repeatable). "
        "Default: the config's serve.models.",
    ),
]


def _checkpoints(config: RunConfig, given: list[str] | None) -> dict[str, str] | None:
    """`NAME=PATH` / `PATH` options -> {served name: path}; names must be distinct (answers are cached by name).

    A `toy:` path becomes its place in the config's toy world (built by the entry step if it is read)."""
    from limo_ray.toy.references import is_toy_reference, toy_location

    if not given:
        return None
    named: dict[str, str] = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item.rstrip("/")).name, item
        if name in named:
            raise LimoError(f"--checkpoint: two checkpoints are named {name!r}: give them names, NAME=PATH")
        named[name] = toy_location(path, config.toy) if is_toy_reference(path) else path
    return named


def _served_paths(config: RunConfig, checkpoints: dict[str, str] | None) -> list[str]:
    """What `limo serve` loads: the given checkpoints, or serve.models; plus every model's tokenizer."""
    paths = list(checkpoints.values()) if checkpoints else [config.models[n].path for n in config.serve.models]
    return [*paths, *(m.tokenizer for m in config.models.values() if m.tokenizer)]


@app.command("serve")
def serve_command(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    checkpoint: CheckpointOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address [serve.host: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port [serve.port].")] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the `serve build`-format config (RayService) and exit.")
    ] = False,
) -> None:
    """Serve checkpoints behind an OpenAI-compatible endpoint (/v1/models, /v1/completions, /v1/chat/completions).

    Autoscaled by serve.min_replicas..max_replicas; past serve.max_queued_requests, 503 with Retry-After. If the
    variable named by serve.api_key_env is set, requests need `Authorization: Bearer <key>`. Stays up until
    Ctrl-C.

    Example: `limo serve --config tiny --checkpoint sft=runs/demo/train/checkpoint`
    """
    import yaml

    from limo_ray.serve import run_server, serve_config

    loaded = _load(config, overrides)
    checkpoints = _checkpoints(loaded, checkpoint)
    resolved = _resolved(loaded, lambda c: _served_paths(c, checkpoints))
    if print_config:
        typer.echo(yaml.safe_dump(serve_config(resolved, checkpoints), sort_keys=False), nl=False)
        return
    handle = run_server(resolved, checkpoints, host=host, port=port)
    typer.echo(
        f"serving {', '.join(handle.models)} at {handle.openai_base_url} (ready in {handle.startup_s:.0f}s); "
        "Ctrl-C stops"
    )
    handle.wait()


@app.command("eval")
def eval_command(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Evaluate the model(s) behind this OpenAI-compatible URL.")
    ] = None,
    checkpoint: CheckpointOption = None,
    benchmark: Annotated[
        list[str] | None, typer.Option("--benchmark", "-b", help="Benchmark to run [eval.benchmarks] (repeatable).")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="With --endpoint: served model name(s) [every model it lists].")
    ] = None,
) -> None:
    """Run the benchmarks against an endpoint and write eval/report.json, report.md and plots.

    With --checkpoint (or neither option) a Serve app is started for the checkpoints, evaluated, and stopped.
    Re-running with the same run folder sends only what is missing (answers are cached per item and sample).

    Example: `limo eval --config tiny --checkpoint base=toy:student --checkpoint sft=runs/demo/train/checkpoint`
    """
    import os

    from limo_ray.evaluate import EvalRequest, run_eval

    loaded = _load(config, overrides)
    checkpoints = _checkpoints(loaded, checkpoint)
    resolved = _resolved(loaded)
    folder = _run_dir(resolved, run_dir)
    judge_url = resolved.eval.judge_url
    with run_lock(folder):
        if endpoint is not None:
            if checkpoint:
                raise LimoError("give --endpoint or --checkpoint, not both")
            key = os.environ.get(resolved.eval.api_key_env) if resolved.eval.api_key_env else None
            request = EvalRequest(
                endpoint,
                benchmark,
                model,
                key,
                judge_url=judge_url,
                judge_model=resolved.eval.judge_model,
                judge_api_key=key,
            )
            report = run_eval(resolved, request, folder, progress=typer.echo)
        else:
            from limo_ray.run import evaluate_checkpoints

            served = checkpoints or {n: resolved.models[n].path for n in resolved.serve.models}
            report = evaluate_checkpoints(resolved, served, folder, benchmark, progress=typer.echo)
    for name in report.checkpoints:
        scores = ", ".join(
            f"{b} {s['pass@1']}% [{s['ci95'][0]}, {s['ci95'][1]}]" for b, s in report.data["checkpoints"][name].items()
        )
        typer.echo(f"{name}: {scores}")
    typer.echo(f"report: {report.files.get('md', folder / 'eval' / 'report.md')}")


@app.command("run")
def run_command(
    config: ConfigOption = "tiny",
    overrides: SetOption = None,
    run_dir: RunDirOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The whole job: curate -> train -> evaluate, plus the control (the student trained on a random selection).

    Example: `limo run --config tiny --run-dir runs/demo`. Every finished step is skipped on a re-run, so after a
    crash the same command finishes the job. Writes summary.md (accuracies with 95% CIs and paired bootstrap
    p-values against the base student, the curation funnel, the loss curve) into the run folder. The console
    shows the progress; Ray's and vLLM's logs go to RUN_DIR/logs/ (--verbose streams them here).
    """
    from limo_ray.console import job_console, summary_sections
    from limo_ray.engine.ray_session import start_job_ray
    from limo_ray.run import run_all
    from limo_ray.status import RUN_STEPS

    resolved = _resolved(_load(config, overrides))
    folder = _run_dir(resolved, run_dir)
    start_ray = partial(start_job_ray, resolved.cluster)
    with run_lock(folder), job_console(folder, start_ray, verbose=verbose, steps=len(RUN_STEPS)) as console:
        summary = run_all(resolved, folder, log=console)
        console.note(summary_sections((folder / "summary.md").read_text(encoding="utf-8")))
        console.note(f"summary: {summary.files['summary']}")


@app.command("status")
def status_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (the --run-dir of `limo run`, curate, train, eval).")],
) -> None:
    """Where a run stands, read from its files alone (never Ray): steps done/running/pending, the curation funnel
    so far, the last training step and loss, eval progress. Works on a run still going, and on a run folder on
    shared storage while the job runs on the cluster.

    Example: `limo status runs/demo`"""
    from limo_ray.status import format_status, read_status

    typer.echo(format_status(read_status(run_dir)))


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

    Example: `limo grade --input answers.jsonl --response-field output --answer-field gold`
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
    """List registered benchmarks with their grading mode, paper decoding and the paper's LIMO score.

    Example: `limo benchmarks list`"""
    from limo_ray.benchmarks import BenchmarkRegistry

    resolved = _load(config, overrides)
    registry = BenchmarkRegistry.from_config(resolved.benchmarks)
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
    """Print the paper's results table (pass@1, %) as JSON.

    Example: `limo benchmarks paper > paper.json`"""
    from limo_ray.benchmarks import BenchmarkRegistry

    resolved = _load(config, overrides)
    typer.echo(json.dumps(BenchmarkRegistry.from_config(resolved.benchmarks).paper_table(), indent=2))


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
    except OSError as exc:
        import errno

        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Every output is written to a temporary name and renamed into place, and a stage is complete only once
        # its manifest is: what was finished stays valid, and the same command resumes after space is freed.
        where = f" writing {exc.filename}" if exc.filename else ""
        typer.echo(
            f"limo: error: no space left on the device{where}. Finished stages and stored samples are kept; "
            "free space (or pick another --run-dir) and run the same command again to resume.",
            err=True,
        )
        return 28
    except typer.TyperException as exc:  # a usage error (typo, missing argument): raised as standalone_mode is off
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()  # click's own usage error: the usage, the closest option, `Try 'limo ... --help'`
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
