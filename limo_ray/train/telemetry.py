"""Training telemetry: rank 0's per-step figures as Ray gauges, live on the metrics port and in Grafana.

The record is `train/metrics.jsonl` (`limo_ray.train.metrics`); these gauges carry the same numbers for watching.
"""

from __future__ import annotations

from typing import Any

from limo_ray.telemetry import MetricSpec, RayMetrics

# The metrics.jsonl fields that also go out as Ray gauges, one `limo_train_<field>` each.
GAUGE_FIELDS = ("loss", "lr", "tokens_per_s", "step", "epoch")
TRAIN_METRICS = tuple(
    MetricSpec(f"limo_train_{field}", "gauge", f"SFT {field}, rank 0", ("run",)) for field in GAUGE_FIELDS
)


class StepGauges:
    """Rank 0's per-step figures as Ray metrics (`ray_limo_train_loss` etc. on the metrics port / Grafana).

    Per-step `ray.train.report` calls would carry them too, but each is a barrier that waits for the Train
    controller's poll (up to 2 s): reports go with checkpoints only, gauges every step, at no cost.
    """

    def __init__(self, run_name: str) -> None:
        self.tags = {"run": run_name}
        self._ray = RayMetrics(TRAIN_METRICS)

    def set(self, row: dict[str, Any]) -> None:
        for field in GAUGE_FIELDS:
            if row.get(field) is not None:
                self._ray.set(f"limo_train_{field}", float(row[field]), self.tags)
