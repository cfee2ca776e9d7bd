"""limo_ray.telemetry and the stages' telemetry helpers: names as Prometheus sees them, no-ops without Ray, and what
each helper emits (through a stand-in Ray, see `ray_metrics_calls` in conftest.py)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from limo_ray.curate.telemetry import CURATE_METRICS, CurateMetrics
from limo_ray.evaluate.telemetry import EVAL_METRICS, EvalMetrics, sample_result
from limo_ray.telemetry import MetricSpec, RayMetrics
from limo_ray.train.telemetry import TRAIN_METRICS, StepGauges

COUNTER = MetricSpec("limo_test_things", "counter", "things", ("stage",))
GAUGE = MetricSpec("limo_test_level", "gauge", "level", ("stage",))


def test_exported_names_carry_rays_prefix_and_a_counters_total_suffix() -> None:
    assert (COUNTER.exported, GAUGE.exported) == ("ray_limo_test_things_total", "ray_limo_test_level")


def test_exported_names_are_the_series_rays_metrics_agent_writes() -> None:
    """The agent's own recorder and Prometheus exporter, run in-process (no cluster): what a scrape shows."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from ray._private.telemetry.open_telemetry_metric_recorder import OpenTelemetryMetricRecorder

    recorder = OpenTelemetryMetricRecorder()
    specs = [COUNTER, GAUGE, *CURATE_METRICS, *TRAIN_METRICS, *EVAL_METRICS]
    for spec in specs:
        register = recorder.register_counter_metric if spec.kind == "counter" else recorder.register_gauge_metric
        register(spec.name, spec.description)
        recorder.set_metric_value(spec.name, {key: "x" for key in spec.tag_keys}, 1.0)
    families = text_string_to_metric_families(generate_latest(REGISTRY).decode())
    scraped = {sample.name for family in families for sample in family.samples}
    missing = {spec.exported for spec in specs} - scraped
    assert not missing, f"{sorted(missing)} not among {sorted(n for n in scraped if 'limo' in n)}"


def test_without_ray_emitting_is_a_no_op_that_still_checks_names_and_tags(
    monkeypatch: pytest.MonkeyPatch, ray_metrics_calls: list
) -> None:
    monkeypatch.setattr(sys.modules["ray"], "is_initialized", lambda: False)
    metrics = RayMetrics([COUNTER, GAUGE])
    metrics.inc(COUNTER.name, 3, {"stage": "dedup"})
    metrics.set(GAUGE.name, 0.5, {"stage": "dedup"})
    monkeypatch.delitem(sys.modules, "ray")  # a process that never imported Ray
    metrics.inc(COUNTER.name, 3, {"stage": "dedup"})
    assert ray_metrics_calls == []
    with pytest.raises(KeyError, match="not a declared counter"):
        metrics.inc("limo_test_thing", 1, {"stage": "dedup"})
    with pytest.raises(KeyError, match="not a declared gauge"):
        metrics.set(COUNTER.name, 1, {"stage": "dedup"})
    with pytest.raises(KeyError, match="tags"):
        metrics.inc(COUNTER.name, 1, {"stage": "dedup", "model": "weak"})


def test_values_reach_ray_as_floats_and_zero_increments_are_skipped(ray_metrics_calls: list) -> None:
    """Ray refuses both an increment of 0 and a numpy integer (what a sum over pandas rows gives)."""
    metrics = RayMetrics([COUNTER])
    metrics.inc(COUNTER.name, 0, {"stage": "dedup"})
    metrics.inc(COUNTER.name, np.int64(2), {"stage": "dedup"})
    assert ray_metrics_calls == [("counter", "limo_test_things", 2.0, {"stage": "dedup"})]
    assert type(ray_metrics_calls[0][2]) is float


def test_curate_metrics_emit_rows_tokens_and_solve_rates(ray_metrics_calls: list) -> None:
    metrics = CurateMetrics()
    metrics.rows("weak_filter", "kept", 7)
    metrics.tokens("weak_filter", "weak", 1200, correct=3, graded=4)
    tags = {"stage": "weak_filter", "model": "weak"}
    assert ray_metrics_calls == [
        ("counter", "limo_curate_rows", 7, {"stage": "weak_filter", "kind": "kept"}),
        ("counter", "limo_curate_generated_tokens", 1200, tags),
        ("gauge", "limo_curate_solve_rate", 0.75, tags),
        ("counter", "limo_curate_graded_samples", 3, {**tags, "result": "correct"}),
        ("counter", "limo_curate_graded_samples", 1, {**tags, "result": "wrong"}),
    ]


def test_step_gauges_set_the_row_fields_they_declare(ray_metrics_calls: list) -> None:
    StepGauges("tiny").set({"step": 3, "epoch": 0, "loss": 1.25, "lr": 5e-6, "tokens_per_s": None, "extra": 1})
    assert sorted((name, value) for _, name, value, _ in ray_metrics_calls) == [
        ("limo_train_epoch", 0.0),
        ("limo_train_loss", 1.25),
        ("limo_train_lr", 5e-6),
        ("limo_train_step", 3.0),
    ]
    assert all(tags == {"run": "tiny"} for *_, tags in ray_metrics_calls)


def test_sample_results_separate_refused_from_wrong_and_wait_for_ungraded() -> None:
    rows = [{"correct": True}, {"correct": False}, {"correct": False, "error": "400"}, {"correct": None}]
    assert [sample_result(r) for r in rows] == ["correct", "wrong", "refused", None]


def test_eval_metrics_count_samples_and_keep_a_running_pass_at_1_until_the_report(ray_metrics_calls: list) -> None:
    metrics = EvalMetrics()
    metrics.request("sft", "aime24")
    metrics.graded("sft", "aime24", [{"correct": True}, {"correct": False}, {"correct": None}])
    metrics.graded("sft", "aime24", [{"correct": True}, {"correct": True}])
    assert metrics.running_pass_at_1("sft", "aime24") == 0.75
    assert math.isnan(metrics.running_pass_at_1("sft", "math500"))
    metrics.report({"sft": {"aime24": {"pass@1": 62.5}, "math500": {"pass@1": None}}})
    tags = {"checkpoint": "sft", "benchmark": "aime24"}
    assert ray_metrics_calls == [
        ("counter", "limo_eval_requests", 1, tags),
        ("counter", "limo_eval_graded_samples", 1, {**tags, "result": "correct"}),
        ("counter", "limo_eval_graded_samples", 1, {**tags, "result": "wrong"}),
        ("gauge", "limo_eval_pass_at_1", 0.5, tags),
        ("counter", "limo_eval_graded_samples", 2, {**tags, "result": "correct"}),
        ("gauge", "limo_eval_pass_at_1", 0.75, tags),
        ("gauge", "limo_eval_pass_at_1", 0.625, tags),
    ]
