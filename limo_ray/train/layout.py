"""What a training run is, without starting it: its devices, DeepSpeed config, batch, steps, checkpoints and memory.

`limo train --dry-run` prints `format_training_layout(describe_training_layout(...))`; `run_training` takes its
step count (`plan_steps`) and the model facts it reads (`chat_template_of`, `trust_remote_code_of`,
`model_config_of`) from here, so the dry run and the run count the same way.
"""

from __future__ import annotations

import json
from typing import Any

from limo_ray.config import RunConfig, TrainConfig
from limo_ray.errors import LimoError
from limo_ray.train.data import TokenizedData
from limo_ray.train.deepspeed_config import build_deepspeed_config, dist_backend
from limo_ray.train.packing import pack_best_fit, rows_left_out, steps_per_epoch

# The folder under the storage path where Ray Train keeps this run's checkpoints (and the finished export).
RAY_RUN_NAME = "ds_checkpoints"


def plan_steps(lengths: list[int], train: TrainConfig, world_size: int) -> tuple[int, int]:
    """(rows per epoch, optimizer steps per epoch) for these sample lengths; refuses a batch the rows cannot fill."""
    rows = len(pack_best_fit(lengths, train.max_seq_len)) if train.packing else len(lengths)
    per_epoch = steps_per_epoch(rows, train.micro_batch_size, train.gradient_accumulation_steps, world_size)
    if per_epoch == 0:
        slots = train.gradient_accumulation_steps * world_size
        raise LimoError(
            f"train: {rows} {batch_unit(train)} per epoch cannot fill one step of train.global_batch_size "
            f"{train.global_batch}: a step needs at least one per micro-batch ({slots}); use a smaller global batch"
        )
    return rows, per_epoch


def batch_unit(train: TrainConfig) -> str:
    return "packed rows" if train.packing else "samples"


def chat_template_of(config: RunConfig) -> str | None:
    return None if config.prompt.chat_template == "model" else config.prompt.chat_template


def trust_remote_code_of(config: RunConfig) -> bool:
    return config.models[config.train.model].trust_remote_code


def model_config_of(model_path: str, trust_remote_code: bool) -> Any:
    """The model's transformers config when it can be read here (a local folder or a cached hub name), else None."""
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code, local_files_only=True)
    except (OSError, ValueError):
        return None


def describe_training_layout(
    config: RunConfig, model_path: str | None = None, data: TokenizedData | None = None
) -> dict[str, Any]:
    """What `limo train` would run, without starting Ray: devices, DeepSpeed config, batch, steps, memory.

    `model_path` (resolved) lets the plan read the model's config for bucket sizes and the memory estimate;
    `data` (already tokenised) adds the step count. `format_training_layout` turns the result into lines for the CLI.
    """
    train = config.train
    model_config = model_config_of(model_path, trust_remote_code_of(config)) if model_path else None
    hidden = getattr(model_config, "hidden_size", None)
    if hidden is None:  # a hub model not downloaded here: the estimator's table knows the usual ones
        from limo_ray.architectures import arch_for

        arch = arch_for(config.models[train.model].path)
        hidden = arch.hidden_size if arch is not None else None
    if train.attention == "auto":
        attention = "flash_attention_2 on CUDA workers with flash-attn, else sdpa" if train.use_gpu else "sdpa"
    else:
        attention = train.attention
    plan: dict[str, Any] = {
        "model": f"{train.model} ({model_path or config.models[train.model].path})",
        "workers": f"{train.num_workers} x {'GPU' if train.use_gpu else 'CPU'} ({train.cpus_per_worker:g} CPUs each)",
        "backend": dist_backend(train.use_gpu),
        "attention": attention,
        "precision": train.precision,
        "zero_stage": train.zero_stage,
        "cpu_offload": train.cpu_offload,
        "gradient_checkpointing": train.gradient_checkpointing,
        "sequence": f"max {train.max_seq_len} tokens, {train.truncation} longer, "
        f"packing {'on' if train.packing else 'off'}",
        "global_batch": f"{train.global_batch} {batch_unit(train)} per step = {train.micro_batch_size} per "
        f"micro-batch x {train.gradient_accumulation_steps} accumulation x {train.num_workers} workers",
        "checkpoints": _checkpoint_plan(train),
        "schedule": f"lr {train.learning_rate:g}, {train.lr_scheduler}, warm-up ratio {train.warmup_ratio:g}, "
        f"{train.epochs} epochs",
        "deepspeed": build_deepspeed_config(train, train.num_workers, hidden),
    }
    if data is not None:
        rows, per_epoch = plan_steps(data.lengths.tolist(), train, train.num_workers)
        plan["steps"] = _steps_line(train, rows, per_epoch, f"{rows} {batch_unit(train)} per epoch")
    elif not train.packing:  # one sample per row: the curated dataset's size gives the steps
        rows = config.curate.select.size
        per_epoch = steps_per_epoch(rows, train.micro_batch_size, train.gradient_accumulation_steps, train.num_workers)
        plan["steps"] = _steps_line(train, rows, per_epoch, f"for curate.select.size = {rows} samples")
    plan["memory"] = _memory_estimate(config, model_config)
    return plan


def _steps_line(train: TrainConfig, rows: int, per_epoch: int, basis: str) -> str:
    left = rows_left_out(rows, train.micro_batch_size, train.gradient_accumulation_steps, train.num_workers)
    sits_out = f"; {left} left out per epoch, too few to give every micro-batch one" if left else ""
    return f"{per_epoch} per epoch x {train.epochs} = {per_epoch * train.epochs} ({basis}{sits_out})"


def _checkpoint_plan(train: TrainConfig) -> str:
    every = "every epoch" if train.checkpoint_every_epochs == 1 else f"every {train.checkpoint_every_epochs} epochs"
    if train.checkpoint_every_steps:
        every += f" and every {train.checkpoint_every_steps} steps"
    return (
        f"sharded, {every} and at the last step, staged in {train.scratch_dir or 'the system temp folder'}, "
        f"uploaded in the background to {train.storage_path or '<run dir>/train'}/{RAY_RUN_NAME} "
        f"(keeping {train.keep_checkpoints}); the HF export at the end"
    )


def memory_verdict(config: RunConfig, model_config: Any = None) -> tuple[Any, Any]:
    """(per-GPU estimate, fit verdict) from `limo_ray.train.memory` for this run's training on its cluster.

    (None, None) on CPU runs and for models whose architecture cannot be told; the verdict is None when the
    cluster's `gpu_type` gives no memory size. The loss the loop computes is the fused one (loss.py).
    """
    from limo_ray.hardware import gpu_memory_gib
    from limo_ray.train.memory import estimate_for_config

    estimate = estimate_for_config(config, model_config, loss_impl="fused")
    if estimate is None:
        return None, None
    gib = gpu_memory_gib(config.cluster.gpu_type)
    return estimate, (estimate.fits(gib) if gib is not None else None)


def check_memory(config: RunConfig, model_config: Any = None) -> None:
    """Refuse, with the numbers, a GPU plan whose estimate does not fit the cluster's GPUs."""
    _, verdict = memory_verdict(config, model_config)
    if verdict is not None and not verdict.ok:
        raise LimoError(f"train: the plan {verdict.message}")


def _memory_estimate(config: RunConfig, model_config: Any) -> str:
    estimate, verdict = memory_verdict(config, model_config)
    if estimate is None:
        return "not estimated (CPU training, or an architecture the estimator does not know)"
    if verdict is None:
        return f"{estimate} (cluster.gpu_type {config.cluster.gpu_type!r}: memory per GPU unknown, not checked)"
    return verdict.message


def format_training_layout(layout: dict[str, Any]) -> str:
    lines = []
    for key, value in layout.items():
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=False)
        lines.append(f"{key:>22}: {value}")
    return "\n".join(lines)
