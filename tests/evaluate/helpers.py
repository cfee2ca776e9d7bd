"""Helpers for evaluation tests: a run config, a small registered benchmark, answer rules for fake servers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from limo_ray.config import RunConfig, load_config

_NUMBER = re.compile(r"What is (\d+) \+ (\d+)\?")


def eval_config(shared_data: Path | None, *overrides: str, registry_file: Path | None = None) -> RunConfig:
    sets = [f"benchmarks.data_root={shared_data}"] if shared_data else []
    if registry_file is not None:
        sets.append(f"benchmarks.registry_files=[{json.dumps(str(registry_file))}]")
    sets += ["eval.max_tokens=64", "eval.concurrency=16", "eval.retries=8", "eval.request_timeout_s=60.0"]
    return load_config("tiny", [*sets, *overrides])


def mini_benchmark(
    folder: Path, items: int = 20, samples: int = 2, temperature: float = 0.6, name: str = "mini"
) -> Path:
    """Write `items` sum problems and a registry file declaring them as benchmark `name`; returns the registry."""
    data = folder / f"{name}.jsonl"
    rows = [
        {"id": f"{name}-{i}", "problem": f"What is {i} + {2 * i + 1}?", "answer": str(3 * i + 1)} for i in range(items)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    registry = folder / f"{name}-registry.yaml"
    registry.write_text(
        f"{name}:\n"
        f"  title: Mini sums\n"
        f"  path: {json.dumps(str(data))}\n"
        f"  format: plain\n"
        f"  items: {items}\n"
        f"  grading: math\n"
        f"  decoding: {{samples: {samples}, temperature: {temperature}}}\n",
        encoding="utf-8",
    )
    return registry


def solve_sum(body: dict[str, Any]) -> list[str]:
    """A 'model' that solves the mini benchmark's sums (n completions)."""
    a, b = map(int, _NUMBER.search(body["messages"][-1]["content"]).groups())  # type: ignore[union-attr]
    return [f"{a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."] * body.get("n", 1)


def wrong_sum(body: dict[str, Any]) -> list[str]:
    return ["The answer is \\boxed{-1}."] * body.get("n", 1)
