"""Fixtures for train tests: a tiny Qwen2 student and a LIMO-format dataset, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import build_tiny_checkpoint, limo_rows, write_jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "student")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(limo_rows(48, seed=3), tmp_path_factory.mktemp("data") / "dataset.jsonl")
