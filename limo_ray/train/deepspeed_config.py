"""The DeepSpeed config, built from `TrainConfig` (never a JSON file to hand-edit), and the device choices.

One function per decision so that `describe_training_layout` prints exactly what the workers will run:
  - `build_deepspeed_config`: ZeRO stage, bf16/fp32, micro-batch and accumulation, clipping, offload;
  - `resolve_attention`: "auto" = FlashAttention-2 when CUDA and flash-attn are present, else sdpa;
  - `dist_backend`: NCCL on GPUs, gloo on CPU (the oneCCL bindings of DeepSpeed's CPU accelerator are not installed).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from limo_ray.config import TrainConfig
from limo_ray.errors import LimoError


def build_deepspeed_config(train: TrainConfig, world_size: int, hidden_size: int | None = None) -> dict[str, Any]:
    """The `deepspeed.initialize(config=...)` dict for this run.

    `hidden_size`, when known, sizes ZeRO-3's buckets the way HF's "auto" values do (buckets ~ hidden^2):
    DeepSpeed's fixed defaults are tuned for neither a 64-wide toy nor a 5120-wide 32B.
    """
    zero: dict[str, Any] = {"stage": train.zero_stage}
    if train.zero_stage >= 1:
        zero["contiguous_gradients"] = True
        # Overlapping reduction with compute needs a separate stream: a GPU thing, and a slowdown on gloo.
        zero["overlap_comm"] = train.use_gpu
    if train.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
        if hidden_size:
            zero["reduce_bucket_size"] = hidden_size * hidden_size
            zero["stage3_prefetch_bucket_size"] = int(0.9 * hidden_size * hidden_size)
            zero["stage3_param_persistence_threshold"] = 10 * hidden_size
    if train.cpu_offload:
        if train.zero_stage == 0:
            raise LimoError("train.cpu_offload needs train.zero_stage >= 1: ZeRO stage 0 has nothing to offload")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": train.use_gpu}
        if train.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": train.use_gpu}
    return {
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "train_batch_size": train.micro_batch_size * train.gradient_accumulation_steps * world_size,
        "gradient_clipping": train.max_grad_norm,
        "bf16": {"enabled": train.precision == "bf16"},
        "fp16": {"enabled": False},
        "zero_optimization": zero,
        # We pass a torch AdamW (DeepSpeed's would compile fused_adam for ~70 s on CPU); with offload, the
        # optimizer is DeepSpeedCPUAdam, which DeepSpeed requires there anyway.
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,  # our own logging reports every step
        "wall_clock_breakdown": False,
    }


def flash_attention_available() -> bool:
    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def resolve_attention(requested: str, on_gpu: bool | None = None) -> str:
    """The `attn_implementation` the model loads with; an explicit flash_attention_2 without CUDA is an error."""
    available = flash_attention_available() if on_gpu is None else on_gpu and flash_attention_available()
    if requested == "auto":
        return "flash_attention_2" if available else "sdpa"
    if requested == "flash_attention_2" and not available:
        raise LimoError(
            "train.attention=flash_attention_2 needs a CUDA GPU and the flash-attn package on every worker: "
            "use train.attention=auto (sdpa where FlashAttention-2 is missing)"
        )
    return requested


def dist_backend(use_gpu: bool) -> str:
    return "nccl" if use_gpu else "gloo"


def torch_dtype_name(precision: str) -> str:
    return {"bf16": "bfloat16", "fp32": "float32"}[precision]
