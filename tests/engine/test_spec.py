"""EngineSpec resolution per device: engine kwargs and Ray resources, for hub names, without downloading."""

from __future__ import annotations

import pytest

from limo_ray.config import load_config
from limo_ray.engine import EngineSpec, device_for, engine_spec
from limo_ray.errors import LimoError


def test_limo_32b_models_resolve_for_gpu_by_hub_name() -> None:
    cfg = load_config("limo-32b")
    assert device_for(cfg) == "cuda"
    weak = engine_spec(cfg, "weak")
    assert weak.model == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert weak.actor_options() == {"num_cpus": 1, "num_gpus": 1}
    assert not weak.needs_placement_group()
    kwargs = weak.llm_kwargs()
    assert kwargs["tensor_parallel_size"] == 1 and kwargs["gpu_memory_utilization"] == 0.9
    assert "enforce_eager" not in kwargs and "distributed_executor_backend" not in kwargs

    strong = engine_spec(cfg, "strong")
    assert strong.model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    assert strong.num_gpus == 4 and strong.needs_placement_group()
    assert strong.bundles() == [{"GPU": 1.0, "CPU": 1.0}] + [{"GPU": 1.0}] * 3
    assert strong.actor_options() == {"num_cpus": 0, "num_gpus": 0}
    kwargs = strong.llm_kwargs()
    assert (kwargs["tensor_parallel_size"], kwargs["distributed_executor_backend"]) == (4, "ray")
    assert kwargs["max_model_len"] == 40960 and kwargs["trust_remote_code"] is False
    assert strong.env() == {}


def test_deepseek_r1_spans_two_nodes_with_pipeline_parallelism() -> None:
    r1 = engine_spec(load_config("limo-32b"), "r1")
    assert (r1.world_size, len(r1.bundles())) == (16, 16)
    assert r1.llm_kwargs()["pipeline_parallel_size"] == 2


def test_tiny_models_resolve_for_cpu_with_one_bundle_and_small_kv_cache() -> None:
    cfg = load_config("tiny", ["models.weak.path=/models/weak"])
    spec = engine_spec(cfg, "weak")
    assert spec.device == "cpu" and spec.model == "/models/weak"
    assert spec.bundles() == [{"CPU": 1.0}]
    assert spec.actor_options() == {"num_cpus": 1, "num_gpus": 0}
    kwargs = spec.llm_kwargs()
    assert kwargs["enforce_eager"] is True and "gpu_memory_utilization" not in kwargs
    # One process per CPU engine: the engine core and its executor run in the engine actor.
    assert kwargs["distributed_executor_backend"] == "uni"
    assert spec.env() == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    assert spec.system_prompt == cfg.prompt.system and spec.chat_template is None


def test_same_hub_model_forced_onto_cpu_refuses_tensor_parallelism() -> None:
    with pytest.raises(LimoError, match="needs GPUs"):
        engine_spec(load_config("limo-32b"), "strong", device="cpu")


def test_engine_kwargs_pass_through_and_remote_code_stays_off() -> None:
    cfg = load_config("tiny", ["models.weak.engine_kwargs={max_num_seqs: 64}"])
    spec = engine_spec(cfg, "weak")
    assert spec.llm_kwargs()["max_num_seqs"] == 64 and spec.llm_kwargs()["trust_remote_code"] is False


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(LimoError, match="no model named 'judge'"):
        engine_spec(load_config("tiny"), "judge")


def test_spec_pickles_for_ray_actors() -> None:
    import pickle

    spec = EngineSpec(name="m", model="/x", max_model_len=128, device="cpu")
    assert pickle.loads(pickle.dumps(spec)) == spec
