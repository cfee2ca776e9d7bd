"""cluster/grafana/limo-ray.json: a well-formed dashboard whose queries name metrics that really exist.

The project's names come from the specs the code emits through (`CURATE_METRICS`, `TRAIN_METRICS`,
`EVAL_METRICS`); Ray's from Ray's own objects (the reporter agent's node gauges, Serve's proxy metrics), so a
renamed metric on either side leaves no panel silently empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from limo_ray.curate.telemetry import CURATE_METRICS
from limo_ray.evaluate.telemetry import EVAL_METRICS
from limo_ray.telemetry import EXPORT_PREFIX, MetricSpec
from limo_ray.train.telemetry import TRAIN_METRICS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "cluster" / "grafana" / "limo-ray.json"
PROJECT_SPECS: tuple[MetricSpec, ...] = (*CURATE_METRICS, *TRAIN_METRICS, *EVAL_METRICS)
PROJECT_METRIC_MODULES = {"curate/telemetry.py", "train/telemetry.py", "evaluate/telemetry.py"}

# PromQL, reduced to metric names: strings, label matchers, ranges and groupings go first; of the identifiers
# left, those followed by "(" are functions; keywords are dropped by name.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def test_metric_names_reads_promql_as_expected() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(ray_serve_http_request_latency_ms_bucket{route!~"/-/.*",'
        'ray_io_cluster=~"$cluster"}[$__rate_interval]))) / on() (sum(ray_node_mem_used) or vector(0)) * 1024'
    )
    assert metric_names(expr) == {"ray_serve_http_request_latency_ms_bucket", "ray_node_mem_used"}


def _series(name: str, kind: str) -> set[str]:
    """What Prometheus scrapes for one of Ray's metrics: the prefix, and the suffixes of its type."""
    full = f"{EXPORT_PREFIX}{name}"
    if kind == "counter":
        return {f"{full}_total"}
    if kind == "histogram":
        return {f"{full}_bucket", f"{full}_sum", f"{full}_count"}
    return {full}


def ray_series() -> set[str]:
    """Series Ray itself exports that the dashboard may plot: node gauges and Serve's HTTP proxy metrics."""
    from ray.dashboard.modules.reporter.reporter_agent import METRICS_GAUGES
    from ray.serve._private.common import RequestProtocol
    from ray.serve._private.request_ingress_metrics import RequestIngressMetrics
    from ray.util.metrics import Counter, Histogram, Metric

    names = {s for gauge in METRICS_GAUGES.values() for s in _series(gauge.name, "gauge")}
    # Constructing Serve's metric objects needs no running Ray; their names are what the proxy registers.
    proxy = RequestIngressMetrics(RequestProtocol.HTTP, source="proxy", node_id="n", node_ip_address="127.0.0.1")
    for metric in vars(proxy).values():
        if isinstance(metric, Metric):
            kind = "counter" if isinstance(metric, Counter) else "histogram" if isinstance(metric, Histogram) else ""
            names |= _series(metric.info["name"], kind)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def test_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] and dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_has_a_type_a_place_and_queries(dashboard: dict[str, Any]) -> None:
    panels = list(_panels(dashboard))
    assert len(panels) >= 10
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        name = panel.get("title", panel["id"])
        assert isinstance(panel.get("type"), str) and panel["type"], name
        grid = panel.get("gridPos")
        assert isinstance(grid, dict) and all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")), name
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, name
        if panel["type"] == "row":  # a row is a heading: it has no queries of its own
            assert not panel.get("targets"), name
            continue
        targets = panel.get("targets", [])
        assert targets and all(t.get("expr", "").strip() for t in targets), f"{name}: every target needs an expr"
        assert all(t.get("refId") for t in targets), name
        for source in (panel.get("datasource"), *(t.get("datasource") for t in targets)):
            assert source == {"type": "prometheus", "uid": "${datasource}"}, f"{name}: use the datasource variable"


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_project_metric_in_a_query_is_one_the_code_registers(dashboard: dict[str, Any]) -> None:
    registered = {spec.exported for spec in PROJECT_SPECS}
    used = {name for expr in _exprs(dashboard) for name in metric_names(expr) if "limo_" in name}
    unknown = used - registered
    assert not unknown, f"{sorted(unknown)}: not registered by limo_ray (registered: {sorted(registered)})"


def test_every_registered_project_metric_is_plotted(dashboard: dict[str, Any]) -> None:
    used = {name for expr in _exprs(dashboard) for name in metric_names(expr)}
    unplotted = {spec.exported for spec in PROJECT_SPECS} - used
    assert not unplotted, f"{sorted(unplotted)}: registered by limo_ray but in no panel"


def test_every_other_metric_in_a_query_is_one_ray_exports(dashboard: dict[str, Any]) -> None:
    used = {name for expr in _exprs(dashboard) for name in metric_names(expr) if "limo_" not in name}
    assert used, "the dashboard should plot Ray's own metrics beside the project's"
    unknown = used - ray_series()
    assert not unknown, f"{sorted(unknown)}: not a node or Serve metric this Ray exports"


def test_project_metrics_are_declared_only_in_the_modules_the_dashboard_test_reads() -> None:
    """A new telemetry module must join PROJECT_SPECS above, or its metrics would escape these checks."""
    package = ROOT / "limo_ray"
    declaring = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "MetricSpec(" in path.read_text(encoding="utf-8") and path.name != "__init__.py"
    }
    assert declaring - {"telemetry.py"} == PROJECT_METRIC_MODULES, "declare metrics in a module PROJECT_SPECS reads"
    # Everything goes through limo_ray.telemetry: no stage makes Ray metric handles of its own.
    direct = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "ray.util.metrics" in path.read_text(encoding="utf-8")
    }
    assert direct == {"telemetry.py"}, "emit through limo_ray.telemetry.RayMetrics, not ray.util.metrics directly"
    assert len({spec.name for spec in PROJECT_SPECS}) == len(PROJECT_SPECS)
