"""Shared test fixtures: where the shared benchmark data lives, the test-size toy world, a report line, a stand-in
for Ray's metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from limo_ray.toy import ToyWorld

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def toy_world() -> ToyWorld:
    """The test-size toy world (built once into the shared cache, then read from it)."""
    from limo_ray.toy import build_toy_world

    return build_toy_world("test", progress=False)


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]):
    """Print a measured figure (e.g. per-kind accuracy) into the pytest run's output, past the capture."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n    {line}", end="", flush=True)

    return write


@pytest.fixture
def ray_metrics_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, float, dict[str, str]]]:
    """A stand-in for a running Ray whose metric handles record `(kind, name, value, tags)` instead of exporting.

    `limo_ray.telemetry` only looks Ray up in sys.modules and imports `ray.util.metrics`, so replacing those modules
    for the test shows exactly what a stage emits, without starting Ray.
    """
    import types

    calls: list[tuple[str, str, float, dict[str, str]]] = []

    class Handle:
        def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] = ()) -> None:
            self.name = name

    class Counter(Handle):
        def inc(self, value: float, tags: dict[str, str]) -> None:
            calls.append(("counter", self.name, value, tags))

    class Gauge(Handle):
        def set(self, value: float, tags: dict[str, str]) -> None:
            calls.append(("gauge", self.name, value, tags))

    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: True  # type: ignore[attr-defined]
    util = types.ModuleType("ray.util")
    metrics = types.ModuleType("ray.util.metrics")
    metrics.Counter, metrics.Gauge = Counter, Gauge  # type: ignore[attr-defined]
    for name, module in (("ray", ray), ("ray.util", util), ("ray.util.metrics", metrics)):
        monkeypatch.setitem(sys.modules, name, module)
    return calls
