"""The `limo` command: help that reads well, one-line errors with non-zero exit, grade and config commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMO = [sys.executable, "-m", "limo_ray.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIMO, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_lists_the_commands() -> None:
    out = run("--help")
    assert out.returncode == 0
    for word in ("config", "grade", "benchmarks", "--config", "--set"):
        assert word in out.stdout
    grade_help = run("grade", "--help")
    assert grade_help.returncode == 0
    for word in ("--input", "--response-field", "--answer-field", "--output", "rejected"):
        assert word in grade_help.stdout


def command_paths() -> list[tuple[str, ...]]:
    """`limo` itself, then every command and group, walked from the app."""
    from typer.main import get_command

    from limo_ray.cli import app

    def commands(group, prefix: tuple[str, ...] = ()):
        for name, command in group.commands.items():
            yield (*prefix, name)
            if hasattr(command, "commands"):
                yield from commands(command, (*prefix, name))

    return [(), *commands(get_command(app))]


def test_every_command_help_shows_an_example() -> None:
    paths = command_paths()
    assert len(paths) > 15
    missing = [" ".join(path) or "limo" for path in paths if "Example: `limo " not in run(*path, "--help").stdout]
    assert missing == []


def test_a_typo_in_any_command_is_a_usage_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command and group, walked from the app: an unknown option exits 2 with click's usage error."""
    from limo_ray.cli import main

    paths = command_paths()
    assert len(paths) > 15
    for path in paths:
        assert main([*path, "--no-such-option"]) == 2, path
        err = capsys.readouterr().err
        # `submit` passes unknown options on to the job (`limo submit run ... --set x=1`): it fails on what it lacks.
        problem = "Missing option '--address'" if path == ("submit",) else "No such option: --no-such-option"
        assert "Traceback" not in err and f"Error: {problem}" in err, (path, err)
        assert f"Try '{' '.join(['limo', *path, '--help'])}' for help." in err, (path, err)
    assert main(["nonsense"]) == 2
    assert "No such command 'nonsense'" in capsys.readouterr().err
    assert main(["plan", "--simulat"]) == 2
    assert "(Possible options: --simulate)" in capsys.readouterr().err


def test_config_validate_rejects_misspelt_key_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("extends: tiny\ntrian:\n  epochs: 3\n")
    out = run("config", "validate", "--config", str(path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "unknown key `trian`" in out.stderr and "did you mean `train`" in out.stderr and str(path) in out.stderr


def test_config_validate_rejects_wrong_type_naming_the_key() -> None:
    out = run("config", "validate", "--config", "tiny", "--set", "curate.strong.samples=many")
    assert out.returncode == 2 and "curate.strong.samples" in out.stderr and "Traceback" not in out.stderr


def test_config_show_prints_resolved_yaml_with_overrides() -> None:
    out = run("config", "show", "--config", "limo-32b", "--set", "train.epochs=3")
    assert out.returncode == 0 and "epochs: 3" in out.stdout and "Qwen/Qwen2.5-32B-Instruct" in out.stdout


def test_grade_writes_verdicts_and_quarantines_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "responses.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"out": "so \\boxed{42}", "gold": "42"}),
                json.dumps({"out": "so \\boxed{41}", "gold": 42}),
                "{broken json",
                json.dumps({"out": "\\boxed{1}"}),
                json.dumps({"out": "The answer is $\\frac{1}{2}$.", "gold": "0.5"}),
            ]
        )
        + "\n"
    )
    out = run("grade", "--input", str(src), "--response-field", "out", "--answer-field", "gold")
    assert out.returncode == 0, out.stderr
    assert "graded 3 records: 2 correct" in out.stdout and "2 rejected" in out.stdout
    graded = [json.loads(line) for line in (tmp_path / "responses.graded.jsonl").read_text().splitlines()]
    assert [g["correct"] for g in graded] == [True, False, True]
    assert [g["extracted"] for g in graded] == ["42", "41", "\\frac{1}{2}"]
    rejected = [json.loads(line) for line in (tmp_path / "responses.graded.rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [3, 4]
    assert "not valid JSON" in rejected[0]["reason"] and "'gold'" in rejected[1]["reason"]


def test_grade_missing_input_is_one_line_error(tmp_path: Path) -> None:
    out = run("grade", "--input", str(tmp_path / "nope.jsonl"))
    assert out.returncode == 2 and out.stderr.strip().startswith("limo: error:") and "nope.jsonl" in out.stderr


def test_benchmarks_list_shows_paper_decoding() -> None:
    out = run("benchmarks", "list")
    assert out.returncode == 0
    assert "aime24" in out.stdout and "4 samples at T=0.6" in out.stdout and "57.1" in out.stdout


def test_plan_prints_the_limo_32b_plan_and_refuses_an_impossible_cluster() -> None:
    out = run("plan", "--config", "limo-32b", "--assume", "strong_survival=0.05")
    assert out.returncode == 0, out.stderr
    assert "curate.strong" in out.stdout and "train" in out.stdout and "total" in out.stdout
    refused = run("plan", "--config", "limo-32b", "--set", "cluster.num_nodes=1", "--set", "cluster.gpus_per_node=1")
    assert refused.returncode == 2 and "tensor_parallel_size" in refused.stderr
    bad = run("plan", "--config", "limo-32b", "--assume", "nonsense=1")
    assert bad.returncode == 2 and "--assume" in bad.stderr


def test_train_dry_run_prints_the_memory_plan_and_refuses_one_gpu() -> None:
    out = run("train", "--config", "limo-32b", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "fits:" in out.stdout and "67.3 GiB per GPU" in out.stdout and "zero_stage: 3" in out.stdout
    one = run(
        "train",
        "--config",
        "limo-32b",
        "--dry-run",
        "--set",
        "cluster.num_nodes=1",
        "--set",
        "cluster.gpus_per_node=1",
        "--set",
        "train.num_workers=1",
    )
    assert one.returncode == 2 and "does not fit" in one.stderr and "GiB per GPU" in one.stderr


def test_curate_until_dedup_on_a_user_pool_never_builds_the_toy_world(tmp_path: Path, report) -> None:
    """The tiny preset names toy models and the toy benchmark, but ingest and dedup read only the pool: the entry
    step resolves `toy:` paths without building the world (an empty cache stays empty)."""
    import os
    import time

    pool = tmp_path / "pool.jsonl"
    texts = ["What is 2 + 3?", "What is 2 + 3 ?", "What is 7 - 4?", "Find x if 2x = 10."]
    pool.write_text("".join(json.dumps({"problem": t, "answer": "1"}) + "\n" for t in texts))
    cache = tmp_path / "cache"
    run_dir = tmp_path / "run"
    began = time.perf_counter()
    out = subprocess.run(
        [*LIMO, "curate", "--config", "tiny", "--pool", str(pool), "--until", "dedup", "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LIMO_RAY_CACHE": str(cache)},
    )
    seconds = time.perf_counter() - began
    assert out.returncode == 0, out.stderr
    assert not (cache / "toy").exists()
    manifest = json.loads((run_dir / "curate" / "dedup" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows_in"] == 4 and manifest["rows_out"] == 3
    report(f"limo curate --pool FILE --until dedup on an empty cache: {seconds:.1f}s, no toy world built")


def test_curate_with_a_wrong_until_fails_in_one_line_before_building_anything(tmp_path: Path) -> None:
    import os

    cache = tmp_path / "cache"
    out = subprocess.run(
        [*LIMO, "curate", "--config", "tiny", "--until", "dedupe", "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LIMO_RAY_CACHE": str(cache)},
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "limo: error: --until 'dedupe' is not a curation stage (stages: ingest, dedup, decontaminate, weak_filter, "
        "strong_filter, balance, chains, quality, select, export)"
    ]
    assert not cache.exists() and not (tmp_path / "run").exists()


@pytest.mark.integration
def test_curate_alone_keeps_ray_and_vllm_output_in_the_run_logs_as_limo_run_does(tmp_path: Path) -> None:
    """`limo curate` through the weak filter (a vLLM engine actor on a local Ray): the console gets the header
    and the stages' lines, nothing from Ray's or vLLM's loggers; their output is in RUN_DIR/logs/."""
    run_dir, pool = tmp_path / "run", tmp_path / "pool.jsonl"
    rows = [{"problem": f"What is {a} + 3?", "answer": str(a + 3)} for a in range(20)]
    pool.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["curate", "--config", "tiny", "--set", "toy.size=test", "--pool", str(pool), "--until", "weak_filter"]
    done = subprocess.run([*LIMO, *args, "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    ours = ("Ray dashboard: ", "Grafana: ", "Logs: ", "[curate] ", "curate: weak_filter complete")
    assert [line for line in lines if not line.startswith(ours)] == []
    assert lines[0].startswith("Ray dashboard: http") and f"`limo status {run_dir}`" in lines[2]
    assert any(line.startswith("[curate] weak_filter: ") and " in -> " in line for line in lines)
    logs = run_dir / "logs"
    assert "[curate] weak_filter: " in (logs / "limo.log").read_text()
    worker_output = "".join(p.read_text(errors="replace") for p in (logs / "ray").rglob("worker-*"))
    assert "Initializing a V1 LLM engine" in worker_output  # the engine actor's vLLM log, kept in the run folder
