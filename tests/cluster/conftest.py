"""Fixtures for the cluster manifest tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.kube_schema import CRD_DIR


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR} (shared data absent)")
    return CRD_DIR
