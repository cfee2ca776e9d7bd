"""Shared test fixtures: where the shared benchmark data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]):
    """Print a measured figure (e.g. per-kind accuracy) into the pytest run's output, past the capture."""

    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n    {line}", end="", flush=True)

    return write
