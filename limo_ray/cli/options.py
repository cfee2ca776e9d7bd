"""The options `limo` commands share, and how they become a config, a run folder and its console."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from limo_ray.config import ClusterConfig, RunConfig, load_config

if TYPE_CHECKING:
    from limo_ray.console import JobConsole

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


def load(config: str, overrides: list[str] | None) -> RunConfig:
    """`--config` and `--set` -> the validated config."""
    return load_config(config, overrides or [])


def run_folder(config: RunConfig, run_dir: Path | None) -> Path:
    """`--run-dir`, or runs/<config name>."""
    from limo_ray.runfolder import default_run_dir

    return run_dir if run_dir is not None else default_run_dir(config)


def resolve_entry(
    config: RunConfig, reads: Callable[[RunConfig], Iterable[str]] | None = None, extra: Iterable[str] = ()
) -> RunConfig:
    """The entry step: `toy:` references -> paths, building the toy world only if the command reads it."""
    from limo_ray.toy.references import resolve_references

    return resolve_references(config, reads, extra=extra)


@contextmanager
def step_console(
    folder: Path, cluster: ClusterConfig | None, verbose: bool, steps: int | None = None
) -> Iterator[JobConsole]:
    """A job command's console on its locked run folder, the same for one step as for `limo run`: progress on the
    console, Ray's and vLLM's output in RUN_DIR/logs/ (`--verbose` streams it). `cluster` None: the command needs
    no Ray (nothing to sample, an `--endpoint` eval), so none is started for it."""
    from limo_ray.console import job_console
    from limo_ray.engine.ray_session import start_job_ray
    from limo_ray.runfolder import run_lock

    start_ray = partial(start_job_ray, cluster) if cluster is not None else None
    with run_lock(folder), job_console(folder, start_ray, verbose=verbose, steps=steps) as console:
        yield console
