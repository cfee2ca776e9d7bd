"""Ray custom metrics of curation: rows in/out per stage, tokens generated, solve rates.

They show on each node's metrics endpoint with Ray's `ray_` prefix (e.g. `ray_limo_curate_rows_total`) and in
the Grafana dashboard under cluster/grafana/. Emitting is a no-op when Ray is not running (ingest and dedup
run in the driver without Ray).
"""

from __future__ import annotations

from typing import Any


class CurateMetrics:
    def __init__(self) -> None:
        self._handles: dict[str, Any] | None = None

    def _ready(self) -> dict[str, Any] | None:
        import ray

        if not ray.is_initialized():
            return None
        if self._handles is None:
            from ray.util.metrics import Counter, Gauge

            self._handles = {
                "rows": Counter(
                    "limo_curate_rows", "Problems in/kept/dropped per curation stage", tag_keys=("stage", "kind")
                ),
                "tokens": Counter(
                    "limo_curate_generated_tokens", "Tokens generated per stage and model", tag_keys=("stage", "model")
                ),
                "solve_rate": Gauge(
                    "limo_curate_solve_rate",
                    "Fraction of graded samples that were correct",
                    tag_keys=("stage", "model"),
                ),
            }
        return self._handles

    def rows(self, stage: str, kind: str, count: int) -> None:
        handles = self._ready()
        if handles is not None and count:
            handles["rows"].inc(count, tags={"stage": stage, "kind": kind})

    def tokens(self, stage: str, model: str, count: int, correct: int, graded: int) -> None:
        handles = self._ready()
        if handles is None:
            return
        if count:
            handles["tokens"].inc(count, tags={"stage": stage, "model": model})
        if graded:
            handles["solve_rate"].set(correct / graded, tags={"stage": stage, "model": model})
