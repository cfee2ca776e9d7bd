"""What every curation stage is given: the run's config, its folder, and how to resolve special paths."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from limo_ray.config import RunConfig
from limo_ray.curate.metrics import CurateMetrics
from limo_ray.engine.pool import EngineCache


def _identity(path: str) -> str:
    return path


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class CurateContext:
    config: RunConfig
    run_dir: Path
    # Maps special paths (`toy:pool`, `toy:weak`) to real ones; the CLI passes the toy world's resolver.
    resolve_path: Callable[[str], str] = _identity
    log: Callable[[str], None] = field(default=_print)
    # Engines stay up between rounds and stages on the same model; `run_curation` closes them at the end.
    engines: EngineCache = field(default_factory=EngineCache, compare=False, repr=False)

    @property
    def curate_dir(self) -> Path:
        return self.run_dir / "curate"

    def stage_dir(self, stage: str) -> Path:
        return self.curate_dir / stage

    @cached_property
    def metrics(self) -> CurateMetrics:
        return CurateMetrics()

    @property
    def data_root(self) -> str | None:
        return self.config.benchmarks.data_root
