"""The DeepSpeed config and device choices built from the typed config; the lr schedule; the metrics file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.errors import LimoError
from limo_ray.train.deepspeed_config import build_deepspeed_config, dist_backend, resolve_attention
from limo_ray.train.layout import (
    check_memory,
    describe_training_layout,
    format_training_layout,
    plan_steps,
)
from limo_ray.train.metrics import MetricsLog
from limo_ray.train.run import worker_runtime_env
from limo_ray.train.schedule import lr_multiplier


def test_tiny_preset_builds_zero3_bf16_on_gloo_with_torch_adamw() -> None:
    train = load_config("tiny").train
    ds = build_deepspeed_config(train, world_size=2, hidden_size=64)
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["zero_optimization"]["overlap_comm"] is False
    assert ds["bf16"] == {"enabled": True}
    assert ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["train_batch_size"] == 4 * 1 * 2
    assert ds["gradient_clipping"] == 1.0
    # torch AdamW, not DeepSpeed's: no fused_adam compile at start-up.
    assert ds["zero_force_ds_cpu_optimizer"] is False
    assert "optimizer" not in ds and "scheduler" not in ds
    assert dist_backend(train.use_gpu) == "gloo"


def test_paper_preset_is_zero3_bf16_on_16_gpus() -> None:
    train = load_config("limo-32b").train
    ds = build_deepspeed_config(train, world_size=train.num_workers, hidden_size=5120)
    assert ds["train_batch_size"] == 16 and ds["train_micro_batch_size_per_gpu"] == 1
    assert ds["zero_optimization"]["overlap_comm"] is True
    assert ds["zero_optimization"]["reduce_bucket_size"] == 5120 * 5120
    assert dist_backend(train.use_gpu) == "nccl"
    assert json.loads(json.dumps(ds)) == ds  # plain JSON: what DeepSpeed and the dry run see


def test_fp32_and_offload_are_reflected() -> None:
    train = load_config("tiny", ["train.precision=fp32", "train.cpu_offload=true"]).train
    ds = build_deepspeed_config(train, world_size=2)
    assert ds["bf16"] == {"enabled": False} and ds["fp16"] == {"enabled": False}
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    with pytest.raises(LimoError, match="zero_stage"):
        build_deepspeed_config(load_config("tiny", ["train.cpu_offload=true", "train.zero_stage=0"]).train, 2)


def test_attention_auto_is_sdpa_without_cuda_and_explicit_flash_without_cuda_is_refused() -> None:
    assert resolve_attention("auto", on_gpu=False) == "sdpa"
    assert resolve_attention("eager", on_gpu=False) == "eager"
    with pytest.raises(LimoError, match="flash-attn"):
        resolve_attention("flash_attention_2", on_gpu=False)


def test_cosine_without_warmup_starts_at_the_peak_and_decays_to_zero() -> None:
    factor = lr_multiplier("cosine", total_steps=100, warmup_ratio=0.0)
    assert factor(0) == 1.0
    assert factor(50) == pytest.approx(0.5)
    assert factor(99) < 0.001
    assert all(factor(i) >= factor(i + 1) for i in range(99))


def test_warmup_ramps_up_without_a_step_at_zero() -> None:
    factor = lr_multiplier("cosine", total_steps=100, warmup_ratio=0.05)
    assert [factor(i) for i in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factor(5) == 1.0
    assert lr_multiplier("constant", 10, 0.0)(9) == 1.0
    assert lr_multiplier("linear", 10, 0.0)(5) == pytest.approx(0.5)


def test_metrics_log_cuts_back_to_a_step_and_drops_a_torn_line(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 3, 4):
        log.append({"step": step, "loss": 1.0 / step})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 5, "lo')
    assert log.truncate_after(2) == 2
    assert [r["step"] for r in log.rows()] == [1, 2]


def test_dry_run_plan_states_the_paper_recipe_without_starting_anything() -> None:
    plan = describe_training_layout(load_config("limo-32b"))
    text = format_training_layout(plan)
    assert "16 x GPU" in plan["workers"] and plan["backend"] == "nccl"
    assert plan["zero_stage"] == 3 and plan["precision"] == "bf16" and plan["attention"] == "flash_attention_2"
    assert "lr 5e-06, cosine, warm-up ratio 0, 15 epochs" in plan["schedule"]
    assert "max 16384 tokens" in plan["sequence"]
    assert plan["global_batch"] == "16 samples per step = 1 per micro-batch x 1 accumulation x 16 workers"
    assert plan["steps"].startswith("51 per epoch x 15 = 765 (for curate.select.size = 817 samples; 1 left out per")
    assert plan["checkpoints"].startswith("sharded, every 5 epochs and at the last step, staged in /mnt/scratch")
    assert plan["deepspeed"]["zero_optimization"]["reduce_bucket_size"] == 5120 * 5120  # sized from the arch table
    assert "zero_optimization" in text
    assert plan["memory"].startswith("fits:") and "fused loss" in plan["memory"]


def test_a_gpu_plan_that_cannot_fit_is_refused_with_the_numbers() -> None:
    one_gpu = load_config("limo-32b", ["train.num_workers=1", "cluster.num_nodes=1", "cluster.gpus_per_node=1"])
    with pytest.raises(LimoError, match=r"does not fit: .* GiB per GPU"):
        check_memory(one_gpu)
    check_memory(load_config("limo-32b"))  # the paper's 2 x 8 x 80 GB fits
    check_memory(load_config("tiny"))  # CPU: nothing to check


def test_the_global_batch_is_stated_and_accumulation_derived_from_it() -> None:
    paper = load_config("limo-32b").train
    assert (paper.global_batch_size, paper.gradient_accumulation_steps) == (16, 1)
    on_8_gpus = load_config("limo-32b", ["train.num_workers=8"]).train
    ds = build_deepspeed_config(on_8_gpus, world_size=8)
    assert (ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (2, 16)  # same batch, other layout
    tiny = load_config("tiny").train
    assert (tiny.global_batch, tiny.gradient_accumulation_steps) == (8, 1)  # 4 x 1 x 2, as before the key existed
    assert load_config("tiny", ["train.micro_batch_size=2"]).train.gradient_accumulation_steps == 2
    assert load_config("tiny", ["train.global_batch_size=null"]).train.global_batch == 4 * 2  # no accumulation


def test_a_global_batch_that_does_not_divide_is_refused_naming_the_three_numbers() -> None:
    with pytest.raises(LimoError) as err:
        load_config("limo-32b", ["train.global_batch_size=20"])
    assert "global_batch_size 20" in str(err.value) and "micro_batch_size 1 x num_workers 16" in str(err.value)
    with pytest.raises(LimoError, match="micro_batch_size 4 x num_workers 2 = 8 does not divide"):
        load_config("tiny", ["train.global_batch_size=12"])
    with pytest.raises(LimoError, match=r"set train\.global_batch_size"):
        load_config("tiny", ["train.gradient_accumulation_steps=2"])  # the old key: derived now


def test_rows_too_few_for_one_step_are_refused_at_train_start() -> None:
    train = load_config("tiny", ["train.packing=false", "train.micro_batch_size=1"]).train  # 8 = 1 x 4 x 2
    assert plan_steps([20] * 9, train, 2) == (9, 1)  # 8, then the 9th cannot give 8 micro-batches a row: sits out
    with pytest.raises(LimoError, match=r"7 samples per epoch cannot fill one step of train.global_batch_size 8"):
        plan_steps([20] * 7, train, 2)


def test_gpu_workers_get_expandable_segments_and_cpu_workers_nothing() -> None:
    assert worker_runtime_env(load_config("limo-32b").train) == {
        "env_vars": {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    }
    assert worker_runtime_env(load_config("tiny").train) == {}
