"""The job console: which lines stay and which only move the progress display; plain lines off a terminal; the
driver's own output kept out of the console and in the run folder's logs; the console's summary."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from limo_ray.console import (
    CONSOLE_LOG,
    DRIVER_LOG,
    LOGS_DIR,
    JobConsole,
    classify,
    grafana_line,
    job_console,
    summary_sections,
)
from limo_ray.engine.ray_session import RaySession

REPO = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "dedup", "decontaminate", "weak_filter", "strong_filter", "balance", "chains", "quality"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def job_lines(clock: Clock, batches: int) -> list[str]:
    """What a `limo run` logs, in the stages' own formats, with `batches` progress lines per sampling stage."""
    lines = ["[run] curate -> /runs/demo/curate"]
    for stage in STAGES:
        lines.append(f"[curate] {stage}: 774 problems in")
        if stage == "decontaminate":
            lines.append(
                "[curate] decontaminate: 11 registered benchmarks have no data (set benchmarks.data_root; "
                "which and why: decontaminate/manifest.json); checked: toy"
            )
        if stage.endswith("_filter"):
            lines.append(f"[curate] {stage}: round 1/2: 774 problems x up to 1 samples (weak)")
            lines.append(f"[curate] {stage}: weak engine(s) on node(s) 5f3a9c0d1e2b")
            lines += [
                f"[curate] {stage}: {i * 10}/{batches * 10} requests, {i * 900} tokens, 2100 tok/s"
                for i in range(1, batches + 1)
            ]
        lines.append(f"[curate] {stage}: 774 in -> 700 kept, 74 dropped, 0 rejected, 0 tokens, 1.0s")
    lines += [
        "[run] train the student on 200 curated samples -> /runs/demo/train",
        *[f"[train] step {i}/21, loss {1 / i:.4g}, {5000 + i} tokens/s" for i in range(1, 22)],
        "[run] train (curated): complete: 21 steps, final loss 0.09283, checkpoint /runs/demo/train/checkpoint",
        "[run] evaluate student-base, student-curated, student-random on toy",
        *[f"eval: {i * 100}/900 items ({i * 5} s)" for i in range(1, 10)],
        "eval: 900 requests (0 retries, 0 busy), 900 samples answered now, 0 reused, 0 refused (4xx)",
    ]
    return lines


def test_progress_lines_move_the_display_and_every_other_line_stays() -> None:
    requests = classify("[curate] strong_filter: 512/774 requests, 40960 tokens, 2100 tok/s")
    assert requests.kind == "progress" and requests.progress is not None
    assert (requests.progress.scope, requests.progress.done, requests.progress.total) == ("strong_filter", 512, 774)
    assert requests.progress.rate == 2100
    items = classify("eval: 300/900 items (12 s)")
    assert items.kind == "progress" and items.progress is not None and items.progress.done == 300
    assert classify("[curate] weak_filter: round 2/2: 90 problems x up to 3 samples (weak)").phase == "round 2/2"
    assert classify("[curate] chains: strong: 200 problems x up to 4 chains").phase == "strong"
    assert classify("[curate] dedup: 774 problems in").kind == "stage"
    assert classify("[curate] ingest: 2 source(s) in").kind == "stage"
    assert classify("[curate] weak_filter: weak engine(s) on node(s) 5f3a9c0d1e2b").kind == "info"
    assert classify("[run] curate -> /runs/demo/curate").phase == "curate"
    # Finished stages, step results, warnings and anything unknown are printed.
    for line in (
        "[curate] dedup: 774 in -> 700 kept, 74 dropped, 0 rejected, 0 tokens, 1.0s",
        "[curate] dedup: complete, skipped (774 in -> 700 kept)",
        "[run] train (curated): complete: 21 steps, final loss 0.09283, checkpoint /x",
        "[curate] strong_filter: 1 engine actor(s) failed and were replaced; their batches were sent again",
        "something new",
    ):
        assert classify(line).kind == "note", line


def test_plain_console_prints_finished_stages_and_steps_and_at_most_one_progress_line_per_interval() -> None:
    clock, out, record = Clock(), io.StringIO(), io.StringIO()
    console = JobConsole(out, live=False, record=record, steps=5, plain_every_s=30.0, clock=clock)
    lines = job_lines(clock, batches=40)
    for line in lines:
        clock.now += 2.0  # 2 s between lines: 30 s let through one progress line in 15
        console(line)
    printed = out.getvalue().splitlines()
    notes = [line for line in lines if classify(line).kind == "note"]
    assert all(note in printed for note in notes)
    assert printed[0] == "[run 1/5] curate -> /runs/demo/curate"
    assert "[run 2/5] train the student on 200 curated samples -> /runs/demo/train" in printed
    assert "[run 3/5] evaluate student-base, student-curated, student-random on toy" in printed
    transient = [line for line in printed if line not in notes and not line.startswith("[run ")]
    assert len(transient) == len(lines) * 2 // 30 or len(transient) == len(lines) * 2 // 30 + 1
    assert len(printed) < 60 < len(lines)
    # The record keeps every line, progress included, time-stamped.
    recorded = record.getvalue().splitlines()
    assert len(recorded) == len(lines) and recorded[-1].endswith(lines[-1])
    assert not any("\r" in line or "\x1b" in line for line in printed)  # no bars, no colour codes


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_display_and_still_the_finished_lines() -> None:
    clock, out = Clock(), Terminal()
    console = JobConsole(out, live=True, steps=5, clock=clock)
    for line in job_lines(clock, batches=3):
        console(line)
    display = console._display
    assert display is not None
    job, detail = display.progress.tasks
    assert job.description.startswith("step 3/5: evaluate") and job.completed == 2
    assert (detail.description.strip(), detail.completed, detail.total) == ("eval", 900, 900)
    console.close()
    text = out.getvalue()
    assert "[curate] strong_filter: 774 in -> 700 kept" in text and "[run 2/5] train the student" in text
    assert "requests, 900 tokens" not in text and "eval: 100/900 items" not in text  # drawn in the bars only


def test_a_terminal_draws_training_steps_in_the_display_and_prints_none_of_them() -> None:
    clock, out = Clock(), Terminal()
    console = JobConsole(out, live=True, steps=5, clock=clock)
    lines = job_lines(clock, batches=3)
    for line in lines[
        : lines.index(
            "[run] train (curated): complete: 21 steps, final loss 0.09283, checkpoint /runs/demo/train/checkpoint"
        )
    ]:
        console(line)
    display = console._display
    assert display is not None
    job, detail = display.progress.tasks
    assert job.description.startswith("step 2/5: train the student")
    assert (detail.description.strip(), detail.completed, detail.total) == ("train", 21, 21)
    assert detail.fields["rate"] == "5,021 tok/s" and detail.fields["unit"] == "steps"
    console.close()
    assert "[train] step" not in out.getvalue()


def test_the_console_summary_is_summary_md_accuracy_and_steps_sections() -> None:
    markdown = "\n".join(
        [
            "# limo run: tiny",
            "",
            "## Accuracy (pass@1 %, 95% CI)",
            "",
            "| student | toy |",
            "| student-base | 37.67 [32.16, 43.42] |",
            "",
            "## Curation funnel",
            "",
            "| stage | in | kept |",
            "",
            "## Steps",
            "",
            "| step | seconds | details |",
            "| train | 90.2 | ran, final loss 0.09283, steps 21 |",
            "| curate | 0.0 | skipped (complete), samples 200 |",
            "",
            "## Files",
            "- dataset: `x`",
        ]
    )
    shown = summary_sections(markdown)
    assert shown.splitlines()[0] == "## Accuracy (pass@1 %, 95% CI)"
    assert "final loss 0.09283" in shown and "skipped (complete)" in shown
    assert "Curation funnel" not in shown and "Files" not in shown and "skipped False" not in shown


def test_the_grafana_line_names_the_dashboard_file_and_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    line = grafana_line(REPO)
    dashboard = json.loads((REPO / "cluster" / "grafana" / "limo-ray.json").read_text())
    rows = [p["title"].split(" (")[0] for p in dashboard["panels"] if p.get("type") == "row"]
    assert line.startswith("Grafana: cluster/grafana/limo-ray.json (rows: ")
    assert rows and all(row in line for row in rows)


DRIVER_SCRIPT = """
import os, sys, logging
from pathlib import Path
from limo_ray.console import job_console
with job_console(Path(sys.argv[1])) as console:
    console("[run] curate -> x")
    print("PRINTED-BY-A-LIBRARY")
    logging.getLogger("ray.data").warning("LOGGED-BY-RAY-DATA")
    os.write(2, b"WRITTEN-BY-C++\\n")
    console("[curate] dedup: 10 in -> 9 kept, 1 dropped, 0 rejected, 0 tokens, 0.1s")
print("AFTER-THE-JOB")
"""


def test_off_a_terminal_the_console_shows_plain_lines_and_the_driver_output_goes_to_the_logs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER_SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[run] curate -> x",
        "[curate] dedup: 10 in -> 9 kept, 1 dropped, 0 rejected, 0 tokens, 0.1s",
        "AFTER-THE-JOB",
    ]
    assert done.stderr == ""
    driver = (tmp_path / LOGS_DIR / DRIVER_LOG).read_text()
    assert "PRINTED-BY-A-LIBRARY" in driver and "LOGGED-BY-RAY-DATA" in driver and "WRITTEN-BY-C++" in driver
    assert len((tmp_path / LOGS_DIR / CONSOLE_LOG).read_text().splitlines()) == 2


def _session(logs: Path) -> RaySession:
    return RaySession(
        address="local", started=True, dashboard_url="http://127.0.0.1:8265", metrics_address=None, logs_dir=logs
    )


def test_ray_session_logs_are_linked_while_the_job_runs_and_copied_after_also_those_a_killed_run_left(
    tmp_path: Path,
) -> None:
    sessions = {}
    for name in ("session_a", "session_b"):
        sessions[name] = tmp_path / "ray" / name / "logs"
        sessions[name].mkdir(parents=True)
        (sessions[name] / "worker-1.out").write_text(f"{name} worker\n")
    run_dir = tmp_path / "run"
    ray_logs = run_dir / LOGS_DIR / "ray"
    # A killed run: its job never ended, its link stayed.
    killed = job_console(run_dir, lambda _verbose: _session(sessions["session_a"]), verbose=True, stream=io.StringIO())
    killed.__enter__()
    assert (ray_logs / "session_a").is_symlink()

    out = io.StringIO()
    with job_console(run_dir, lambda _verbose: _session(sessions["session_b"]), verbose=True, stream=out) as console:
        assert not (ray_logs / "session_a").is_symlink()  # copied at this start
        assert (ray_logs / "session_b").is_symlink()
        console("[run] curate -> x")
    assert (ray_logs / "session_a" / "worker-1.out").read_text() == "session_a worker\n"
    assert not (ray_logs / "session_b").is_symlink()
    assert (ray_logs / "session_b" / "worker-1.out").read_text() == "session_b worker\n"
    assert (
        out.getvalue().splitlines()[0] == "Ray dashboard: http://127.0.0.1:8265 (a local Ray started by this command)"
    )
