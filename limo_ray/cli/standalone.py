"""The commands that stand apart from a run: the config (show, validate), the benchmark registry (list, paper),
the toy world (build, report) and the grader (grade)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from limo_ray.cli.app import app
from limo_ray.cli.options import ConfigOption, SetOption, load
from limo_ray.config import preset_names
from limo_ray.errors import LimoError

config_app = typer.Typer(
    help="Show or check a run config (presets: " + ", ".join(preset_names()) + ").\n\n"
    "Example: `limo config show --config limo-32b --set train.epochs=3`",
    no_args_is_help=True,
)
benchmarks_app = typer.Typer(
    help="The registry of evaluation sets.\n\nExample: `limo benchmarks list`", no_args_is_help=True
)
toy_app = typer.Typer(
    help="The built-in toy world: generated problems and tiny models trained on CPU.\n\n"
    "Example: `limo toy build --size test`",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")
app.add_typer(benchmarks_app, name="benchmarks")
app.add_typer(toy_app, name="toy")


@config_app.command("show")
def config_show(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Print the resolved config (preset + overrides) as YAML.

    Example: `limo config show --config limo-32b --set train.epochs=3`"""
    typer.echo(load(config, overrides).to_yaml(), nl=False)


@config_app.command("validate")
def config_validate(config: ConfigOption = "tiny", overrides: SetOption = None) -> None:
    """Check a config: unknown keys and wrong types are errors that name the key and the file.

    Example: `limo config validate --config my.yaml --set curate.select.size=500`"""
    resolved = load(config, overrides)
    typer.echo(f"ok: config {resolved.name!r} is valid (hash {resolved.content_hash()})")


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

    resolved = load(config, overrides)
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

    resolved = load(config, overrides)
    typer.echo(json.dumps(BenchmarkRegistry.from_config(resolved.benchmarks).paper_table(), indent=2))


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

    resolved = load(config, overrides)
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
    from limo_ray.toy import build_toy_world, calibration_report

    resolved = load(config, overrides)
    world = build_toy_world(size or resolved.toy.size, resolved.toy.seed if seed is None else seed)
    typer.echo(f"measuring toy world {world.content_hash} on its benchmark ({world.benchmark})")
    report = calibration_report(world, cluster=resolved.cluster, log=typer.echo)
    typer.echo(report.format())
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({"world": world.content_hash, **report.to_dict()}, indent=2) + "\n")
    if not report.passed:
        raise typer.Exit(1)
