"""Telemetry: the stages' Ray custom metrics for Prometheus and Grafana, declared as `MetricSpec`s, created on
first use, no-ops without Ray.

Each stage declares its metrics in one module-level tuple of specs: the code emits through them and the Grafana
dashboard test (tests/cluster/test_grafana.py) reads the same tuples, so a renamed metric cannot silently leave
a panel empty. Handles are made only once Ray runs in this process, so driver-only steps (ingest, dedup, an
evaluation against a bare URL) and plain-Python tests emit nothing and never start Ray.

On a node's metrics endpoint (`--metrics-export-port`) Ray's exporter names a metric `ray_<name>`, and a
counter's series `ray_<name>_total` (`MetricSpec.exported`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# The namespace Ray's exporter puts before every metric (ray/_private/telemetry/open_telemetry_metric_recorder.py).
EXPORT_PREFIX = "ray_"

MetricKind = Literal["counter", "gauge"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...]

    @property
    def exported(self) -> str:
        """The series name Prometheus scrapes: Ray's prefix, plus `_total` for a counter (Prometheus convention)."""
        return f"{EXPORT_PREFIX}{self.name}{'_total' if self.kind == 'counter' else ''}"


class RayMetrics:
    """Emit to a fixed set of specs; every call is a no-op while Ray is not initialised in this process."""

    def __init__(self, specs: Sequence[MetricSpec]) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._handles: dict[str, Any] | None = None

    def _ready(self) -> dict[str, Any] | None:
        # Ray cannot be initialised in a process that never imported it: checking sys.modules keeps plain-Python
        # callers from paying for `import ray` on every call.
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return None
        if self._handles is None:
            from ray.util.metrics import Counter, Gauge

            kinds = {"counter": Counter, "gauge": Gauge}
            self._handles = {
                name: kinds[spec.kind](spec.name, description=spec.description, tag_keys=spec.tag_keys)
                for name, spec in self.specs.items()
            }
        return self._handles

    def inc(self, name: str, value: float, tags: Mapping[str, str]) -> None:
        self._check(name, "counter", tags)
        handles = self._ready()
        # Ray refuses a counter increment <= 0 (nothing happened, so nothing to record), and any number that is not
        # a Python int or float: counts summed from pandas rows are numpy integers.
        if handles is not None and value > 0:
            handles[name].inc(float(value), tags=dict(tags))

    def set(self, name: str, value: float, tags: Mapping[str, str]) -> None:
        self._check(name, "gauge", tags)
        handles = self._ready()
        if handles is not None:
            handles[name].set(float(value), tags=dict(tags))

    def _check(self, name: str, kind: MetricKind, tags: Mapping[str, str]) -> None:
        # Checked with or without Ray (Ray checks tags only when it records), so a misspelt metric or tag fails
        # in the plain unit tests too.
        spec = self.specs.get(name)
        if spec is None or spec.kind != kind:
            raise KeyError(f"{name!r} is not a declared {kind} (declared: {', '.join(self.specs)})")
        if set(tags) != set(spec.tag_keys):
            raise KeyError(f"{name}: tags {sorted(tags)} given, {sorted(spec.tag_keys)} declared")
