"""Shared by the job scripts: run one `limo` command with this job's arguments, exit with its status."""

from __future__ import annotations

import sys
from pathlib import Path


def run(command: str) -> None:
    # `ray job submit --working-dir .` ships the repo; make its package importable even when not pip-installed.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from limo_ray.cli import main

    sys.exit(main([command, *sys.argv[1:]]))
