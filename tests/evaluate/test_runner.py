"""The evaluator end to end against fake OpenAI-compatible servers: oracle accuracy, retries, refusals, judge,
comparisons, and resuming after a kill without asking a finished sample again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from limo_ray.benchmarks import BenchmarkRegistry
from limo_ray.errors import LimoError
from limo_ray.evaluate import SAMPLES_FILE, EvalRequest, run_eval
from tests.evaluate.fake_openai import FakeOpenAI
from tests.fixtures import eval_config, mini_benchmark, solve_sum, wrong_sum

REPO = Path(__file__).resolve().parents[2]


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "eval" / SAMPLES_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_oracle_that_answers_gold_solutions_scores_at_least_99_percent_on_math500(
    shared_data: Path, tmp_path: Path, report
) -> None:
    """Extraction, prompts and bookkeeping end to end: a 'model' that returns each item's reference solution."""
    loaded = BenchmarkRegistry.from_files().load("math500", str(shared_data))
    gold = {p.problem: p.solution or f"\\boxed{{{p.answer}}}" for p in loaded.result.problems}

    def oracle(body: dict[str, Any]) -> list[str]:
        return [gold[body["messages"][-1]["content"]]] * body["n"]

    config = eval_config(shared_data, "eval.concurrency=32")
    with FakeOpenAI(oracle, models=["oracle"]) as server:
        result = run_eval(config, EvalRequest(server.url, ["math500"], "oracle"), tmp_path)
    scores = result.score("oracle", "math500")
    report(f"oracle on MATH500: pass@1 {scores['pass@1']}% over {scores['n']} items, CI {scores['ci95']}")
    assert scores["n"] == 500 and scores["samples"] == 1
    assert scores["pass@1"] >= 99.0
    assert scores["ci_method"].startswith("exact")
    # The paper's prompt: the run's system prompt, then the problem as the user message; greedy, eval.max_tokens.
    first = server.requests[0]
    assert first["messages"][0] == {"role": "system", "content": config.prompt.system}
    assert first["temperature"] == 0.0 and first["max_tokens"] == 64 and first["n"] == 1
    data = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert data["paper"]["math500"]["LIMO"] == 94.8
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "LIMO (paper)" in markdown and "Qwen2.5-32B-Inst (paper)" in markdown and "94.8" in markdown
    assert (tmp_path / "eval" / "pass_at_1.png").read_bytes()[:4] == b"\x89PNG"


def test_samples_of_an_item_go_in_one_request_with_n(tmp_path: Path) -> None:
    registry = mini_benchmark(tmp_path, items=10, samples=4, temperature=0.6)
    with FakeOpenAI(solve_sum) as server:
        result = run_eval(
            eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake"), tmp_path
        )
    assert len(server.requests) == 10 and {r["n"] for r in server.requests} == {4}
    assert {r["temperature"] for r in server.requests} == {0.6}
    scores = result.score("fake", "mini")
    assert scores["pass@1"] == 100.0 and scores["maj@4"] == 100.0 and scores["pass@4"] == 100.0
    assert len(_rows(tmp_path)) == 40


def test_busy_server_is_retried_until_every_item_is_answered(tmp_path: Path) -> None:
    registry = mini_benchmark(tmp_path, items=20, samples=2)
    with FakeOpenAI(solve_sum, busy_first=30) as server:
        result = run_eval(
            eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake"), tmp_path
        )
    assert server.statuses[503] == 30
    assert result.score("fake", "mini")["answered"] == 40
    assert len({r["key"] for r in _rows(tmp_path)}) == 40


def refuse_one(body: dict[str, Any]) -> list[str] | tuple[int, str]:
    """Solve every sum but one item's, which the server refuses as too long (its two samples)."""
    if "What is 3 +" in body["messages"][-1]["content"]:
        return 400, "the prompt is 900 tokens; the model has a context of 512 tokens"
    return solve_sum(body)


def test_refused_request_is_recorded_as_a_wrong_answer_and_not_retried(tmp_path: Path) -> None:
    registry = mini_benchmark(tmp_path, items=5, samples=2)
    with FakeOpenAI(refuse_one) as server:
        result = run_eval(
            eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake"), tmp_path
        )
        assert server.statuses[400] == 1  # not retried
        scores = result.score("fake", "mini")
        assert scores["refused"] == 2 and scores["pass@1"] == 80.0
        refused = [r for r in _rows(tmp_path) if r["error"]]
        assert len(refused) == 2 and all("context of 512" in r["error"] and not r["correct"] for r in refused)
        # A re-run does not ask for refused samples again: they are answered (with their error).
        run_eval(eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake"), tmp_path)
        assert server.statuses[400] == 1


def test_progress_goes_out_as_ray_metrics_and_the_gauge_ends_at_the_reports_pass_at_1(
    tmp_path: Path, ray_metrics_calls: list
) -> None:
    registry = mini_benchmark(tmp_path, items=5, samples=2)
    with FakeOpenAI(refuse_one) as server:
        result = run_eval(
            eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake"), tmp_path
        )
    tags = {"checkpoint": "fake", "benchmark": "mini"}
    counted: dict[tuple[str, str], float] = {}
    for kind, name, value, call_tags in ray_metrics_calls:
        if kind == "counter":
            assert {k: call_tags[k] for k in tags} == tags
            key = (name, call_tags.get("result", ""))
            counted[key] = counted.get(key, 0) + value
    assert counted == {
        ("limo_eval_requests", ""): 5,
        ("limo_eval_graded_samples", "correct"): 8,
        ("limo_eval_graded_samples", "refused"): 2,
    }
    gauges = [(value, call_tags) for kind, _, value, call_tags in ray_metrics_calls if kind == "gauge"]
    assert gauges[-1] == (result.score("fake", "mini")["pass@1"] / 100, tags) == (0.8, tags)


def test_wrong_api_key_stops_the_run_with_one_line_and_caches_nothing(tmp_path: Path) -> None:
    registry = mini_benchmark(tmp_path, items=5, samples=1)
    with FakeOpenAI(solve_sum, api_key="right") as server:
        with pytest.raises(LimoError, match="401"):
            run_eval(
                eval_config(None, registry_file=registry),
                EvalRequest(server.url, ["mini"], "fake", api_key="nope"),
                tmp_path,
            )
        result = run_eval(
            eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake", "right"), tmp_path
        )
    assert result.score("fake", "mini")["pass@1"] == 100.0


def test_judge_benchmark_is_graded_through_the_judge_endpoint(shared_data: Path, tmp_path: Path) -> None:
    """CHMath (judge-graded, 4 samples at T=0.6): right answers on even items, wrong on odd; the judge decides."""
    loaded = BenchmarkRegistry.from_files().load("chmath", str(shared_data))
    answers = {p.problem: (i, p.answer) for i, p in enumerate(loaded.result.problems)}

    def model(body: dict[str, Any]) -> list[str]:
        index, answer = answers[body["messages"][-1]["content"]]
        return [f"So the answer is \\boxed{{{answer if index % 2 == 0 else 'no idea'}}}."] * body["n"]

    def judge_rule(body: dict[str, Any]) -> list[str]:
        prompt = body["messages"][-1]["content"]
        reference = prompt.split("Reference answer:\n", 1)[1].split("\n\nStudent's response", 1)[0]
        student = prompt.split("earlier text may be cut):\n", 1)[1]
        return ["YES" if f"\\boxed{{{reference}}}" in student else "NO"]

    config = eval_config(shared_data)
    with FakeOpenAI(model, models=["m"]) as server, FakeOpenAI(judge_rule, models=["judge"]) as judge:
        with pytest.raises(LimoError, match="judge"):
            run_eval(config, EvalRequest(server.url, ["chmath"], "m"), tmp_path)
        result = run_eval(
            config, EvalRequest(server.url, ["chmath"], "m", judge_url=judge.url, judge_model="judge"), tmp_path
        )
    scores = result.score("m", "chmath")
    assert scores["n"] == 30 and scores["samples"] == 4
    assert scores["pass@1"] == 50.0
    assert len(judge.requests) == 120
    assert {r["temperature"] for r in judge.requests} == {0.0}


def test_two_checkpoints_are_compared_on_the_same_items(tmp_path: Path) -> None:
    registry = mini_benchmark(tmp_path, items=40, samples=1, temperature=0.0)

    def by_model(body: dict[str, Any]) -> list[str]:
        return solve_sum(body) if body["model"] == "good" else wrong_sum(body)

    with FakeOpenAI(by_model, models=["good", "bad"]) as server:
        result = run_eval(eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"]), tmp_path)
    assert result.checkpoints == ["good", "bad"]
    (comparison,) = result.data["comparisons"]
    assert comparison["a"] == "good" and comparison["b"] == "bad"
    assert comparison["delta"] == -100.0 and comparison["p_value"] < 0.001
    assert "## Comparison" in (tmp_path / "eval" / "report.md").read_text()


def test_a_checkpoint_evaluated_earlier_in_the_run_folder_joins_the_report(tmp_path: Path) -> None:
    registry = mini_benchmark(tmp_path, items=10, samples=1, temperature=0.0)
    config = eval_config(None, registry_file=registry)
    with FakeOpenAI(wrong_sum, models=["base"]) as base:
        run_eval(config, EvalRequest(base.url, ["mini"], "base"), tmp_path)
    with FakeOpenAI(solve_sum, models=["sft"]) as sft:
        result = run_eval(config, EvalRequest(sft.url, ["mini"], "sft"), tmp_path)
        assert len(sft.requests) == 10
    assert result.checkpoints == ["sft", "base"]
    assert result.score("base", "mini")["pass@1"] == 0.0 and result.score("sft", "mini")["pass@1"] == 100.0
    assert result.data["comparisons"][0]["delta"] == -100.0
    # With other settings (here max_tokens), the earlier answers no longer match and stay out of the report.
    with FakeOpenAI(solve_sum, models=["sft"]) as sft:
        other = run_eval(
            eval_config(None, "eval.max_tokens=32", registry_file=registry),
            EvalRequest(sft.url, ["mini"], "sft"),
            tmp_path,
        )
    assert other.checkpoints == ["sft"]


_CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
from limo_ray.evaluate import EvalRequest, run_eval
from tests.fixtures import eval_config
config = eval_config(None, "eval.concurrency=4", registry_file={registry!r})
run_eval(config, EvalRequest({url!r}, ["mini"], "fake"), {run_dir!r})
"""


def test_killed_eval_resumes_without_asking_any_finished_sample_again(tmp_path: Path, report) -> None:
    registry = mini_benchmark(tmp_path, items=60, samples=2)
    run_dir = tmp_path / "run"
    samples = run_dir / "eval" / SAMPLES_FILE
    with FakeOpenAI(solve_sum, delay_s=0.05) as server:
        script = _CHILD.format(repo=str(REPO), registry=str(registry), url=server.url, run_dir=str(run_dir))
        child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not samples.exists() or samples.read_text().count("\n") < 30):
            assert child.poll() is None, "the eval finished or died before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        finished_before = {r["item"] for r in _rows(run_dir)}
        asked_before = server.user_messages()
        assert 0 < len(finished_before) < 60

        result = run_eval(eval_config(None, registry_file=registry), EvalRequest(server.url, ["mini"], "fake"), run_dir)
        asked_after = server.user_messages()
    resent = [
        item
        for item in finished_before
        if asked_after[_problem(item)] != asked_before[_problem(item)]  # asked again after the restart
    ]
    asked_again = sum(asked_after.values()) - sum(asked_before.values())
    report(f"killed after {len(finished_before)}/60 items; the re-run asked for {asked_again} items")
    assert resent == []
    rows = _rows(run_dir)
    assert len({r["key"] for r in rows}) == 120
    assert result.score("fake", "mini")["answered"] == 120 and result.score("fake", "mini")["pass@1"] == 100.0


def _problem(item: str) -> str:
    i = int(item.rsplit("-", 1)[1])
    return f"What is {i} + {2 * i + 1}?"
