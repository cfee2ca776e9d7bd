"""Decontamination with benchmarks whose data is absent says so in one console line, with the fix."""

from __future__ import annotations

from pathlib import Path

from limo_ray.config import load_config
from limo_ray.curate.context import CurateContext
from limo_ray.curate.pipeline import build_stage
from limo_ray.records import Problem


def test_benchmarks_without_data_are_one_line_naming_the_setting_and_what_was_checked(
    tmp_path: Path, shared_data: Path
) -> None:
    config = load_config("tiny", [f"benchmarks.data_root={shared_data}"])
    lines: list[str] = []
    stage = build_stage(config, "decontaminate")
    problem = Problem(
        id="p1", problem="What is 6 times 7?", answer="42", source="t", source_line=1, source_format="plain"
    )
    result = stage.run(CurateContext(run_dir=tmp_path, log=lines.append), [problem])

    skipped = result.facts["skipped_benchmarks"]
    checked = result.facts["benchmarks"]
    assert {"math500", "aime24"} <= set(checked) and skipped  # the shared data has some sets, not all
    assert lines == [
        f"[curate] decontaminate: {len(skipped)} registered benchmarks have no data (set benchmarks.data_root; "
        f"which and why: decontaminate/manifest.json); checked: {', '.join(checked)}"
    ]
