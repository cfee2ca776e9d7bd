"""Benchmark registry: the paper's sets, read from the shared data, with the paper's decoding and scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from limo_ray.benchmarks import BenchmarkRegistry
from limo_ray.errors import LimoError

EXPECTED_ITEMS = {
    "aime24": 30, "math500": 500, "amc23": 40, "olympiadbench": 675, "chmath": 30, "gaokao": 79, "kaoyan": 199,
    "gradeschool": 210, "minerva": 272, "gpqa": 198, "gsm8k": 1319,
}  # fmt: skip
PAPER_LIMO = {
    "aime24": 57.1, "math500": 94.8, "amc23": 92.0, "olympiadbench": 66.8, "chmath": 75.4, "gaokao": 81.0,
    "kaoyan": 73.4, "gradeschool": 76.2, "minerva": 44.9, "gpqa": 66.7,
}  # fmt: skip


@pytest.fixture(scope="module")
def registry() -> BenchmarkRegistry:
    return BenchmarkRegistry.from_files()


@pytest.mark.parametrize("name", sorted(EXPECTED_ITEMS))
def test_every_registered_benchmark_loads_every_item(registry: BenchmarkRegistry, shared_data: Path, name: str) -> None:
    loaded = registry.load(name, str(shared_data))
    assert (len(loaded.result.problems), len(loaded.result.rejected)) == (EXPECTED_ITEMS[name], 0)
    assert all(p.answer.strip() for p in loaded.result.problems)


def test_grading_modes_follow_the_paper(registry: BenchmarkRegistry) -> None:
    assert registry.get("gpqa").grading == "choice"
    assert {n for n in registry.names() if registry.get(n).grading == "judge"} == {
        "chmath",
        "gaokao",
        "kaoyan",
        "gradeschool",
    }


def test_paper_decoding_and_scores(registry: BenchmarkRegistry) -> None:
    sampled = {n: registry.get(n).decoding for n in registry.names() if registry.get(n).decoding.samples > 1}
    assert set(sampled) == {"aime24", "amc23", "chmath"}
    assert all((d.samples, d.temperature) == (4, 0.6) for d in sampled.values())
    assert registry.get("math500").decoding.temperature == 0.0
    table = registry.paper_table()
    assert {n: row["LIMO"] for n, row in table.items()} == PAPER_LIMO
    assert table["aime24"]["o1-preview"] == 44.6 and table["gpqa"]["Qwen2.5-32B-Inst"] == 48.0


def test_user_registers_a_benchmark_from_yaml(tmp_path: Path) -> None:
    data = tmp_path / "mine.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": 4}\n')
    entry = tmp_path / "extra.yaml"
    entry.write_text(
        f"mine:\n  title: Mine\n  path: {data}\n  format: plain\n  decoding: {{samples: 2, temperature: 0.5}}\n"
    )
    registry = BenchmarkRegistry.from_files([entry])
    assert "mine" in registry.names() and "aime24" in registry.names()
    assert [p.answer for p in registry.load("mine").result.problems] == ["2", "4"]
    assert registry.decoding_for("mine").samples == 2


def test_bad_user_entry_and_missing_data_root_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    entry = tmp_path / "extra.yaml"
    entry.write_text("mine:\n  path: x.jsonl\n  grading: vibes\n")
    with pytest.raises(LimoError, match=r"benchmark 'mine'.*grading"):
        BenchmarkRegistry.from_files([entry])
    monkeypatch.delenv("LIMO_RAY_DATA", raising=False)
    with pytest.raises(LimoError, match="data_root"):
        BenchmarkRegistry.from_files().load("aime24")
    with pytest.raises(LimoError, match="unknown benchmark 'aime2'"):
        BenchmarkRegistry.from_files().get("aime2")
