"""The job's commands: its steps one by one (curate, train, serve, eval), all of them (run), and where a run
stands (status)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from limo_ray.cli.app import app
from limo_ray.cli.options import (
    ConfigOption,
    RunDirOption,
    SetOption,
    VerboseOption,
    load,
    resolve_entry,
    run_folder,
    step_console,
)
from limo_ray.config import RunConfig
from limo_ray.errors import LimoError

CheckpointOption = Annotated[
    list[str] | None,
    typer.Option(
        "--checkpoint",
        help="NAME=PATH (or PATH, named after its folder): a local folder or hub name to serve (repeatable). "
        "Default: the config's serve.models.",
    ),
]


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
    verbose: VerboseOption = False,
) -> None:
    """Curate a pool: ingest, dedup, decontaminate, weak/strong filters, balance, chains, quality, select, export.

    Each stage writes curate/<stage>/ with a manifest; curate/ledger.parquet records every decision. Re-running
    with the same run folder skips finished stages and draws only the samples that are missing. The console
    shows the stages' progress; Ray's and vLLM's logs go to RUN_DIR/logs/ (--verbose streams them here).

    Example: `limo curate --config tiny --until strong_filter` (the toy pool, into runs/tiny).
    """
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.pipeline import curation_stages, run_curation, stage_inputs
    from limo_ray.runfolder import write_resolved_config

    extra = [f"curate.pool.sources={json.dumps(pool)}"] if pool else []
    loaded = load(config, [*(overrides or []), *extra])
    # The stages' inputs are listed before the toy world is built, so a wrong --until fails before any build.
    resolved = resolve_entry(loaded, lambda c: stage_inputs(curation_stages(c, until)))
    folder = run_folder(resolved, run_dir)
    stages = curation_stages(resolved, until)
    # Ray only for stages with engine workers: ingest and dedup run in this process.
    cluster = resolved.cluster if any(stage.resources() for stage in stages) else None
    with step_console(folder, cluster, verbose) as console:
        ctx = CurateContext(run_dir=folder, cluster=resolved.cluster, log=console)
        write_resolved_config(resolved, folder)
        last = run_curation(ctx, stages)[-1]
        console.note(
            f"curate: {last.name} complete, {len(last.kept)} problems kept; ledger: {ctx.curate_dir / 'ledger.parquet'}"
        )


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
    verbose: VerboseOption = False,
) -> None:
    """Full-parameter SFT with DeepSpeed ZeRO-3 on Ray Train; resumes from the last checkpoint in the run folder.

    Writes train/metrics.jsonl (step, epoch, loss, lr, tokens_per_s), resumable checkpoints, and a consolidated HF
    checkpoint in train/checkpoint/ (safetensors, tokenizer, chat template) that transformers and vLLM load.

    Example: `limo train --config tiny --run-dir runs/demo` (after `limo curate` there), or
    `limo train --config limo-32b --dry-run` for the memory plan.
    """
    from limo_ray.train import describe_training_layout, format_training_layout, run_training
    from limo_ray.train.layout import check_memory

    loaded = load(config, overrides)
    resolved = resolve_entry(loaded, lambda c: [model or c.models[c.train.model].path])
    folder = run_folder(resolved, run_dir)
    model_path = model or resolved.models[resolved.train.model].path
    if dry_run:
        typer.echo(format_training_layout(describe_training_layout(resolved, model_path)))
        check_memory(resolved)
        return
    data = dataset or folder / "curate" / "dataset.jsonl"
    if not data.is_file():
        raise LimoError(f"no training data at {data}: run `limo curate` first, or pass --dataset FILE")
    with step_console(folder, resolved.cluster, verbose) as console:
        result = run_training(resolved, folder, data, model_path, progress=console)
        console.note(f"train {result.status()}; metrics {result.metrics_path}")


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


def _eval_reads(
    config: RunConfig, checkpoints: dict[str, str] | None, benchmarks: list[str] | None, served: bool
) -> list[str]:
    """What `limo eval` reads: the benchmark files, and the models it serves (the checkpoints, their tokenizers
    and a judge under `models:`); an `--endpoint` eval serves nothing."""
    from limo_ray.benchmarks import BenchmarkRegistry

    paths = []
    for bench in BenchmarkRegistry.from_config(config.benchmarks).select(benchmarks or config.eval.benchmarks):
        try:
            paths.append(bench.resolve_path(config.benchmarks.data_root))
        except LimoError:  # a relative path and no data root: the evaluation says so when it loads it
            continue
    if served:
        paths += _served_paths(config, checkpoints)
        judge = config.eval.judge_model
        if judge is not None and config.eval.judge_url is None:
            paths.append(config.models[judge].path)
    return paths


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
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Stream Ray's and vLLM's logs here (else Ray's log files only).")
    ] = False,
) -> None:
    """Serve checkpoints behind an OpenAI-compatible endpoint (/v1/models, /v1/completions, /v1/chat/completions).

    Autoscaled by serve.min_replicas..max_replicas; past serve.max_queued_requests, 503 with Retry-After. If the
    variable named by serve.api_key_env is set, requests need `Authorization: Bearer <key>`. Stays up until
    Ctrl-C.

    Example: `limo serve --config tiny --checkpoint sft=runs/demo/train/checkpoint`
    """
    import yaml

    from limo_ray.console.job import serve_lines
    from limo_ray.engine.ray_session import start_job_ray
    from limo_ray.serve import run_server, serve_config

    loaded = load(config, overrides)
    checkpoints = _checkpoints(loaded, checkpoint)
    resolved = resolve_entry(loaded, lambda c: _served_paths(c, checkpoints))
    if print_config:
        typer.echo(yaml.safe_dump(serve_config(resolved, checkpoints), sort_keys=False), nl=False)
        return
    session = start_job_ray(resolved.cluster, verbose)
    for line in serve_lines(session, verbose):
        typer.echo(line)
    handle = run_server(resolved, checkpoints, host=host, port=port, stream_worker_logs=verbose)
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
    verbose: VerboseOption = False,
) -> None:
    """Run the benchmarks against an endpoint and write eval/report.json, report.md and plots.

    With --checkpoint (or neither option) a Serve app is started for the checkpoints, evaluated, and stopped.
    Re-running with the same run folder sends only what is missing (answers are cached per item and sample).

    Example: `limo eval --config tiny --checkpoint base=toy:student --checkpoint sft=runs/demo/train/checkpoint`
    """
    import os

    from limo_ray.evaluate import EvalRequest, run_eval

    loaded = load(config, overrides)
    checkpoints = _checkpoints(loaded, checkpoint)
    resolved = resolve_entry(loaded, lambda c: _eval_reads(c, checkpoints, benchmark, served=endpoint is None))
    folder = run_folder(resolved, run_dir)
    judge_url = resolved.eval.judge_url
    if endpoint is not None and checkpoint:
        raise LimoError("give --endpoint or --checkpoint, not both")
    from limo_ray.run import answers_missing, evaluate_checkpoints

    served = checkpoints or {n: resolved.models[n].path for n in resolved.serve.models}
    # Ray only to serve: an --endpoint eval, or one whose answers are all cached, starts none.
    serving = endpoint is None and answers_missing(resolved, served, folder, benchmark)
    with step_console(folder, resolved.cluster if serving else None, verbose) as console:
        if endpoint is not None:
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
            report = run_eval(resolved, request, folder, progress=console)
        else:
            report = evaluate_checkpoints(resolved, served, folder, benchmark, progress=console)
        for name in report.checkpoints:
            scores = ", ".join(
                f"{b} {s['pass@1']}% [{s['ci95'][0]}, {s['ci95'][1]}]"
                for b, s in report.data["checkpoints"][name].items()
            )
            console.note(f"{name}: {scores}")
        console.note(f"report: {report.files.get('md', folder / 'eval' / 'report.md')}")


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
    from limo_ray.console import summary_sections
    from limo_ray.run import run_all
    from limo_ray.status import RUN_STEPS

    resolved = resolve_entry(load(config, overrides))
    folder = run_folder(resolved, run_dir)
    with step_console(folder, resolved.cluster, verbose, steps=len(RUN_STEPS)) as console:
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
