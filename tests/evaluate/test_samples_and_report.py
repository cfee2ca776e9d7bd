"""samples.jsonl (torn lines, keys) and the report files, without any server."""

from __future__ import annotations

import json
from pathlib import Path

from limo_ray.evaluate import SampleStore, parse_judgement, render_markdown, sample_key
from limo_ray.evaluate.judge import RESPONSE_TAIL_CHARS, judge_messages
from limo_ray.evaluate.report import plot_pass_at_1

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "What is 1 + 1?"}]


def _key(**change: object) -> str:
    args: dict[str, object] = {
        "checkpoint": "m",
        "benchmark": "b",
        "item": "i",
        "sample": 0,
        "messages": MESSAGES,
        "temperature": 0.6,
        "top_p": 1.0,
        "max_tokens": 64,
    }
    args.update(change)
    return sample_key(**args)  # type: ignore[arg-type]


def test_key_changes_with_anything_that_changes_the_answer() -> None:
    base = _key()
    assert base == _key()
    changed = [
        _key(checkpoint="other"),
        _key(sample=1),
        _key(temperature=0.0),
        _key(max_tokens=32),
        _key(messages=[MESSAGES[1]]),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_store_cuts_a_torn_last_line_and_appends_after_it(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"key": "a", "response": "x"}) + "\n" + '{"key": "b", "resp', encoding="utf-8")
    with SampleStore(path) as store:
        assert set(store.rows) == {"a"}
        store.append([{"key": "c", "response": "y"}])
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_store_keeps_the_last_row_for_a_key(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleStore(path) as store:
        store.append([{"key": "a", "correct": None}])
        store.append([{"key": "a", "correct": True}])
    with SampleStore(path) as store:
        assert store.get("a") == {"key": "a", "correct": True}


def test_judge_prompt_keeps_the_end_of_a_long_response_and_parses_the_last_verdict() -> None:
    response = "x" * 10_000 + "\\boxed{42}"
    prompt = judge_messages("p", "42", response)[1]["content"]
    assert "\\boxed{42}" in prompt and len(prompt) < RESPONSE_TAIL_CHARS + 1000
    assert parse_judgement("YES") is True
    assert parse_judgement("Let me see... no wait. Final: yes.") is True
    assert parse_judgement("NO.") is False
    assert parse_judgement("maybe") is None


def _report_data() -> dict:
    scores = {
        "pass@1": 25.0,
        "ci95": [10.0, 40.0],
        "ci_method": "bootstrap",
        "n": 30,
        "samples": 4,
        "maj@4": 20.0,
        "pass@4": 50.0,
        "answered": 120,
        "refused": 0,
        "truncated": 3,
        "decoding": {"samples": 4, "temperature": 0.6, "top_p": 1.0},
    }
    return {
        "units": "percent",
        "checkpoints": {"base": {"aime24": scores}, "sft": {"aime24": {**scores, "pass@1": 40.0}}},
        "paper": {"aime24": {"LIMO": 57.1, "Qwen2.5-32B-Inst": 16.5, "o1-preview": 44.6, "QwQ-32B-Preview": 50.0}},
        "benchmarks": {"aime24": {"title": "AIME24", "grading": "math"}},
        "comparisons": [
            {"benchmark": "aime24", "a": "base", "b": "sft", "delta": 15.0, "ci95": [2.0, 28.0], "p_value": 0.02}
        ],
    }


def test_markdown_puts_ours_beside_the_papers_columns(tmp_path: Path) -> None:
    markdown = render_markdown(_report_data())
    header = next(line for line in markdown.splitlines() if line.startswith("| benchmark | decoding"))
    assert header.split(" | ")[2:4] == ["base", "sft"]
    assert "LIMO (paper)" in header and "o1-preview (paper)" in header and "QwQ-32B-Preview (paper)" in header
    row = next(line for line in markdown.splitlines() if line.startswith("| AIME24"))
    assert "25.0 [10.0, 40.0]" in row and "57.1" in row and "4 x T=0.6" in row
    assert "| aime24 | base | sft | +15.0 |" in markdown


def test_chart_is_a_png(tmp_path: Path) -> None:
    path = plot_pass_at_1(_report_data(), tmp_path / "chart.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
