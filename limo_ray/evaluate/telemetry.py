"""Ray custom metrics of evaluation, live while it runs: requests sent, samples graded, pass@1 per benchmark.

They show on the metrics endpoint of the driver's node as `ray_limo_eval_*` and in the Grafana dashboard under
cluster/grafana/. Emitting is a no-op when Ray is not running in the evaluating process (`limo eval --endpoint`
against a bare URL); `limo eval --checkpoint` and the eval RayJob start a Serve app, so Ray runs there.

The pass@1 gauge is first a running figure (correct / graded over the samples this run has graded so far; the
report averages per item and also counts samples reused from earlier runs), then, once the report is written,
the report's own pass@1. `eval/report.json` stays the record: a gauge leaves the endpoint when its process exits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from limo_ray.telemetry import MetricSpec, RayMetrics

REQUESTS = MetricSpec(
    "limo_eval_requests",
    "counter",
    "Requests sent to the endpoint per checkpoint and benchmark",
    ("checkpoint", "benchmark"),
)
SAMPLES = MetricSpec(
    "limo_eval_graded_samples",
    "counter",
    "Graded samples per checkpoint, benchmark and result (correct, wrong, refused)",
    ("checkpoint", "benchmark", "result"),
)
PASS_AT_1 = MetricSpec(
    "limo_eval_pass_at_1",
    "gauge",
    "pass@1 (0..1) per checkpoint and benchmark: running while graded, then the report's",
    ("checkpoint", "benchmark"),
)
EVAL_METRICS = (REQUESTS, SAMPLES, PASS_AT_1)


def sample_result(row: Mapping[str, Any]) -> str | None:
    """`correct`, `wrong` or `refused` (a 4xx, recorded as a wrong answer); None while not graded yet."""
    if row.get("correct") is None:
        return None
    if row.get("error"):
        return "refused"
    return "correct" if row["correct"] else "wrong"


class EvalMetrics:
    def __init__(self) -> None:
        self._ray = RayMetrics(EVAL_METRICS)
        self._graded: Counter[tuple[str, str]] = Counter()
        self._correct: Counter[tuple[str, str]] = Counter()

    def request(self, checkpoint: str, benchmark: str) -> None:
        self._ray.inc(REQUESTS.name, 1, {"checkpoint": checkpoint, "benchmark": benchmark})

    def graded(self, checkpoint: str, benchmark: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Count the sample rows just stored; rows the judge could not grade yet wait for the re-run."""
        results = Counter(r for r in map(sample_result, rows) if r is not None)
        if not results:
            return
        tags = {"checkpoint": checkpoint, "benchmark": benchmark}
        for result, count in results.items():
            self._ray.inc(SAMPLES.name, count, {**tags, "result": result})
        key = (checkpoint, benchmark)
        self._graded[key] += results.total()
        self._correct[key] += results["correct"]
        self._ray.set(PASS_AT_1.name, self.running_pass_at_1(checkpoint, benchmark), tags)

    def running_pass_at_1(self, checkpoint: str, benchmark: str) -> float:
        graded = self._graded[(checkpoint, benchmark)]
        return self._correct[(checkpoint, benchmark)] / graded if graded else float("nan")

    def report(self, checkpoints: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        """The report's pass@1 (`report.data["checkpoints"]`, in percent) replaces the running figures."""
        for checkpoint, benchmarks in checkpoints.items():
            for benchmark, scores in benchmarks.items():
                if scores.get("pass@1") is not None:
                    tags = {"checkpoint": checkpoint, "benchmark": benchmark}
                    self._ray.set(PASS_AT_1.name, scores["pass@1"] / 100, tags)
