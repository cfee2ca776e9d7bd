"""Ray's metrics endpoint, scraped during a tiny curation, carries the project's metrics with the run's numbers.

An embedded Ray on loopback with a metrics port of the test's choosing (its own temp dir, shut down by this
process); a short curation in-process on the test-size toy world (a 20-problem pool, up to the weak filter);
then the endpoint is polled until Ray's agent has flushed what the driver emitted, and compared with the stage
manifests. Run it alone with `python -m pytest -q tests/cluster/test_metrics_scrape.py`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
import pytest

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.pipeline import curation_stages, run_curation
from limo_ray.curate.telemetry import ROWS, SAMPLES, SOLVE_RATE, TOKENS
from limo_ray.toy import build_toy_world
from limo_ray.toy.references import resolve_references

pytestmark = pytest.mark.integration

POOL_SIZE = 20
STAGES = ("ingest", "dedup", "decontaminate", "weak_filter")
ROW_KINDS = {"in", "kept", "dropped", "rejected"}
# Ray's driver reports to its node's agent every metrics_report_interval_ms (10 s by default): a few rounds.
SCRAPE_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Curated:
    ctx: CurateContext
    metrics_url: str

    def manifest(self, stage: str) -> dict:
        return json.loads((self.ctx.stage_dir(stage) / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Curated]:
    import ray

    from limo_ray.engine.ray_session import init_ray

    folder = tmp_path_factory.mktemp("metrics-run")
    sizing = ["toy.size=test"]
    toy_pool = build_toy_world("test").pool
    pool = folder / "pool.jsonl"
    pool.write_text("".join(line + "\n" for line in toy_pool.read_text(encoding="utf-8").splitlines()[:POOL_SIZE]))
    config = resolve_references(load_config("tiny", [*sizing, f"curate.pool.sources={json.dumps([str(pool)])}"]))
    port = _free_port()
    if ray.is_initialized():
        ray.shutdown()  # an earlier module's embedded cluster, in this process: this one needs its own metrics port
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAY_ADDRESS", raising=False)  # a fresh embedded cluster, never one the machine points at
        init_ray(
            config.cluster,
            _metrics_export_port=port,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(tmp_path_factory.mktemp("ray")),
        )
    try:
        ctx = CurateContext(run_dir=folder / "run", cluster=config.cluster)
        run_curation(ctx, curation_stages(config, "weak_filter"))
        yield Curated(ctx, f"http://127.0.0.1:{port}/metrics")
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Series:
    name: str
    labels: Mapping[str, str]
    value: float


def scrape(url: str) -> list[Series]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return []  # the agent's HTTP server may not be up yet: poll again
    families = text_string_to_metric_families(text)
    return [Series(sample.name, sample.labels, sample.value) for family in families for sample in family.samples]


def total(series: list[Series], name: str, **labels: str) -> float | None:
    """Sum over the series of `name` whose labels include `labels` (Ray adds labels of its own); None if none."""
    values = [s.value for s in series if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(values) if values else None


def expected_rows(run: Curated) -> dict[tuple[str, str], int]:
    """Each stage's manifest counts, as the rows counter should show them (zero counts are never emitted)."""
    rows = {}
    for stage in STAGES:
        manifest = run.manifest(stage)
        counts = {
            "in": manifest["rows_in"],
            "kept": manifest["rows_out"],
            "dropped": manifest["extra"]["dropped"],
            "rejected": manifest["rows_rejected"],
        }
        rows |= {(stage, kind): count for kind, count in counts.items() if count}
    return rows


def mismatches(run: Curated, series: list[Series]) -> list[str]:
    """What the endpoint does not (yet) show as the run wrote it; empty once everything is there."""
    problems = []
    for (stage, kind), count in expected_rows(run).items():
        seen = total(series, ROWS.exported, stage=stage, kind=kind)
        if seen != count:
            problems.append(f"{ROWS.exported}{{stage={stage},kind={kind}}}: {seen}, manifest {count}")
    tokens = run.manifest("weak_filter")["extra"]["tokens"]
    seen = total(series, TOKENS.exported, stage="weak_filter", model="weak")
    if seen != tokens:
        problems.append(f"{TOKENS.exported}{{stage=weak_filter,model=weak}}: {seen}, manifest {tokens}")
    graded = total(series, SAMPLES.exported, stage="weak_filter", model="weak")
    if not graded:
        problems.append(f"{SAMPLES.exported}{{stage=weak_filter,model=weak}}: {graded}")
    if total(series, SOLVE_RATE.exported, stage="weak_filter", model="weak") is None:
        problems.append(f"{SOLVE_RATE.exported}{{stage=weak_filter,model=weak}}: missing")
    return problems


def test_metrics_endpoint_shows_the_runs_rows_tokens_and_solve_rates(curated: Curated, report) -> None:
    assert curated.manifest("weak_filter")["complete"] is True
    assert curated.manifest("weak_filter")["extra"]["tokens"] > 0
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        series = scrape(curated.metrics_url)
        problems = mismatches(curated, series)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert problems == [], f"after {SCRAPE_TIMEOUT_S} s of polling {curated.metrics_url}"
    report(
        "weak_filter on the endpoint: "
        + ", ".join(f"{k} {total(series, ROWS.exported, stage='weak_filter', kind=k):.0f}" for k in ("in", "kept"))
        + f", {total(series, TOKENS.exported, stage='weak_filter', model='weak'):.0f} tokens"
    )

    # Tag values are the run's own: its stage names, the row kinds, the weak model; results correct or wrong.
    project = [s for s in series if s.name.startswith("ray_limo_curate_")]
    assert {s.labels["stage"] for s in project} <= set(STAGES)
    assert {s.labels["kind"] for s in project if s.name == ROWS.exported} <= ROW_KINDS
    assert {s.labels["model"] for s in project if "model" in s.labels} == {"weak"}
    assert {s.labels["result"] for s in project if s.name == SAMPLES.exported} <= {"correct", "wrong"}
    correct = total(series, SAMPLES.exported, stage="weak_filter", model="weak", result="correct") or 0
    graded = total(series, SAMPLES.exported, stage="weak_filter", model="weak") or 0
    assert 0 <= correct <= graded
    solve_rate = total(series, SOLVE_RATE.exported, stage="weak_filter", model="weak")
    assert solve_rate is not None and 0.0 <= solve_rate <= 1.0
    # Ray's own node metrics are on the same endpoint, the dashboard's other half.
    assert total(series, "ray_node_cpu_utilization") is not None
