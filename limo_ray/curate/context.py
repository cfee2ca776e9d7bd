"""What every curation stage is given besides its settings: the run folder, the cluster, the log and the engines."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from limo_ray.config import ClusterConfig
from limo_ray.curate.telemetry import CurateMetrics
from limo_ray.engine.pool import EngineCache


def _print(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class CurateContext:
    run_dir: Path
    # Where engines run; it decides placement, not what a stage produces, so it is not in any stage's key.
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
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
