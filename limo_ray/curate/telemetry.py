"""Ray custom metrics of curation: rows in/out per stage, tokens generated, solve rates.

They show on each node's metrics endpoint with Ray's `ray_` prefix (e.g. `ray_limo_curate_rows_total`) and in
the Grafana dashboard under cluster/grafana/. Emitting is a no-op when Ray is not running (ingest and dedup
run in the driver without Ray).
"""

from __future__ import annotations

from limo_ray.telemetry import MetricSpec, RayMetrics

ROWS = MetricSpec(
    "limo_curate_rows", "counter", "Problems in/kept/dropped/rejected per curation stage", ("stage", "kind")
)
TOKENS = MetricSpec(
    "limo_curate_generated_tokens", "counter", "Tokens generated per stage and model", ("stage", "model")
)
# The gauge follows the latest batch (a live reading); the counter's correct / all is the stage's rate so far.
SOLVE_RATE = MetricSpec(
    "limo_curate_solve_rate",
    "gauge",
    "Fraction of the latest batch's graded samples that were correct",
    ("stage", "model"),
)
SAMPLES = MetricSpec(
    "limo_curate_graded_samples",
    "counter",
    "Graded samples per stage, model and result (correct, wrong)",
    ("stage", "model", "result"),
)
CURATE_METRICS = (ROWS, TOKENS, SOLVE_RATE, SAMPLES)


class CurateMetrics:
    def __init__(self) -> None:
        self._ray = RayMetrics(CURATE_METRICS)

    def rows(self, stage: str, kind: str, count: int) -> None:
        self._ray.inc(ROWS.name, count, {"stage": stage, "kind": kind})

    def tokens(self, stage: str, model: str, count: int, correct: int, graded: int) -> None:
        tags = {"stage": stage, "model": model}
        self._ray.inc(TOKENS.name, count, tags)
        if graded:
            self._ray.set(SOLVE_RATE.name, correct / graded, tags)
        self._ray.inc(SAMPLES.name, correct, {**tags, "result": "correct"})
        self._ray.inc(SAMPLES.name, graded - correct, {**tags, "result": "wrong"})
