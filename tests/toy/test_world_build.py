"""The test-size toy world, really built: HF folders transformers and vLLM load, a cache that hits, calibration.

One build per module (the `world` fixture, in the user's cache so other integration tests reuse it); a second
build of a micro world in a temporary cache checks the atomic write and the cache hit without the cost.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from limo_ray.config import ToyConfig
from limo_ray.errors import LimoError
from limo_ray.records import load_problems
from limo_ray.records.schema import normalize_text
from limo_ray.toy import MODEL_NAMES, TOY_SPECS, ToyWorld, build_toy_world, world_hash
from limo_ray.toy.cache import cache_root
from limo_ray.toy.references import toy_location
from limo_ray.toy.tokenizer import IM_END, load_tokenizer, tokenizer_problems

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> ToyWorld:
    return build_toy_world("test", seed=0, progress=False)


def _micro_spec():
    """The test spec with a handful of steps per model: exercises the whole build in seconds."""
    spec = TOY_SPECS["test"]
    shrink = {name: dataclasses.replace(getattr(spec, name), steps=8) for name in MODEL_NAMES}
    return dataclasses.replace(spec, size="micro", pool_size=60, benchmark_per_cell=1, tokenizer_problems=200, **shrink)


def test_every_model_folder_is_a_qwen2_checkpoint_transformers_loads(world: ToyWorld) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    for name in MODEL_NAMES:
        folder = world.models[name]
        config = json.loads((folder / "config.json").read_text())
        generation = json.loads((folder / "generation_config.json").read_text())
        tok = load_tokenizer(folder)
        assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
        assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
        assert generation["eos_token_id"] == config["eos_token_id"] == tok.convert_tokens_to_ids(IM_END)
        model = AutoModelForCausalLM.from_pretrained(folder)
        ids = tok.apply_chat_template(
            [{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
        with torch.no_grad():
            logits = model(ids).logits
        assert logits.shape == (1, ids.shape[1], len(tok))
        head = config["hidden_size"] // config["num_attention_heads"]
        assert head in (32, 64), "vLLM's CPU attention takes only some head sizes"


def test_tokenizers_round_trip_in_every_folder(world: ToyWorld) -> None:
    rows = [json.loads(line) for line in world.benchmark.read_text().splitlines()][:100]
    samples = [r["problem"] for r in rows] + [r["solution"] for r in rows]
    for name in MODEL_NAMES:
        assert tokenizer_problems(load_tokenizer(world.models[name]), samples) == []


def test_pool_and_benchmark_load_as_problems_and_are_disjoint(world: ToyWorld) -> None:
    spec = TOY_SPECS["test"]
    pool = load_problems([str(world.pool)])
    bench = load_problems([str(world.benchmark)])
    assert pool.rejected == [] and bench.rejected == []
    assert len(bench.problems) == spec.benchmark_size == 100
    assert spec.pool_size < len(pool.problems) < spec.pool_size * 1.1
    assert {p.difficulty for p in bench.problems} == {"1", "2", "3", "4", "5"}
    assert {p.domain for p in pool.problems} == {"arithmetic", "equations", "modular", "counting"}
    assert all(p.solution and "\\boxed{" in p.solution for p in pool.problems)
    assert not {normalize_text(p.problem) for p in pool.problems} & {normalize_text(p.problem) for p in bench.problems}


def test_second_build_is_a_cache_hit(world: ToyWorld) -> None:
    built_at = world.manifest["built_utc"]
    again = build_toy_world("test", seed=0, progress=False)
    assert again.root == world.root and again.manifest["built_utc"] == built_at  # found, not built again
    # The entry step names the same places without building anything.
    for part in ("weak", "strong", "strong_b", "student", "pool", "benchmark"):
        assert toy_location(f"toy:{part}", ToyConfig(size="test")) == str(world.path(part))
    with pytest.raises(LimoError, match="unknown toy world path"):
        toy_location("toy:teacher", ToyConfig(size="test"))


def test_world_manifest_records_the_build(world: ToyWorld, report) -> None:
    manifest = world.manifest
    timings = manifest["timings"]
    report(f"test-size world built in {timings['total_s']}s: " + json.dumps(timings))
    assert manifest["content_hash"] == world.content_hash == world_hash(TOY_SPECS["test"], 0)
    assert set(manifest["models"]) == set(MODEL_NAMES)
    specs = {s.name: s for s in TOY_SPECS["test"].model_specs()}
    for name, stats in manifest["models"].items():
        # A branch starts from its parent's snapshot: compare with where the parent started.
        start = manifest["models"][specs[name].branch_of or name]["first_loss"]
        assert stats["final_loss"] < start / 3, name


def test_micro_build_writes_atomically_and_hits_its_cache(tmp_path: Path) -> None:
    spec = _micro_spec()
    debris = cache_root(tmp_path) / f".{world_hash(spec, 5)}.killed.tmp"  # what a SIGKILLed build leaves
    (debris / "weak").mkdir(parents=True)
    built = build_toy_world("test", seed=5, cache_dir=tmp_path, progress=False, spec=spec)
    siblings = {p.name for p in built.root.parent.iterdir()}
    # No temporary folder left behind: neither this build's nor the killed one's.
    assert siblings == {built.root.name, f".{built.content_hash}.lock"}
    assert all((built.models[name] / "model.safetensors").is_file() for name in MODEL_NAMES)
    written = {p: p.stat().st_mtime_ns for p in built.root.rglob("*")}
    assert build_toy_world("test", seed=5, cache_dir=tmp_path, progress=False, spec=spec).root == built.root
    assert {p: p.stat().st_mtime_ns for p in built.root.rglob("*")} == written  # found, not built again
    other_seed = world_hash(spec, 6)
    assert other_seed != built.content_hash


def test_calibration_holds_at_test_size_with_vllm_in_ray_data(world: ToyWorld, report) -> None:
    import ray

    from limo_ray.toy.report import calibration_report

    try:
        result = calibration_report(world, log=report)
    finally:
        ray.shutdown()
    for line in result.format().splitlines():
        report(line)
    assert result.checks and result.passed, result.format()
