"""ZeRO model states per GPU: parameters, gradients and Adam states, from DeepSpeed's own estimators.

The arithmetic per ZeRO stage is item 2 of `limo_ray.train.memory`'s docstring. DeepSpeed is imported only when
an estimate is asked for, and quietly on a planning host without a GPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from limo_ray.architectures import ModelArch
from limo_ray.errors import LimoError

__all__ = ["model_states_bytes"]


@contextmanager
def _quiet_deepspeed_import() -> Iterator[None]:
    """Import DeepSpeed without its 'could not detect an accelerator' warning on GPU-less planning hosts."""
    if "DS_ACCELERATOR" in os.environ or "deepspeed" in sys.modules:
        yield
        return
    import torch

    if torch.cuda.is_available():
        yield
        return
    # What auto-detection would pick anyway on this host; set only for the import, then put back.
    os.environ["DS_ACCELERATOR"] = "cpu"
    try:
        yield
    finally:
        os.environ.pop("DS_ACCELERATOR", None)


@cache
def _deepspeed_estimators() -> tuple[Any, Any]:
    with _quiet_deepspeed_import():
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    return estimate_zero2_model_states_mem_needs, estimate_zero3_model_states_mem_needs


def model_states_bytes(
    arch: ModelArch,
    zero_stage: int,
    num_gpus: int,
    gpus_per_node: int,
    offload_optimizer: bool = False,
    offload_params: bool = False,
) -> tuple[float, float]:
    """(GPU bytes per GPU, host bytes per node) for params, grads and Adam states; DeepSpeed's own estimators."""
    p = arch.num_params()
    per_node = min(num_gpus, max(gpus_per_node, 1))
    nodes = num_gpus // per_node
    if nodes * per_node != num_gpus:
        # Not whole nodes: the per-GPU figure depends only on the total, so count it as one node of N.
        nodes, per_node = 1, num_gpus
    if offload_params and zero_stage != 3:
        raise LimoError(f"ZeRO-{zero_stage}: parameter offload needs ZeRO-3")
    if zero_stage == 3:
        _, zero3 = _deepspeed_estimators()
        cpu, gpu, _ = zero3(
            p,
            arch.largest_layer_params(),
            num_gpus_per_node=per_node,
            num_nodes=nodes,
            cpu_offload=offload_optimizer or offload_params,
            cpu_offload_params=offload_params,
        )
        return float(gpu), float(cpu)
    if zero_stage == 2:
        zero2, _ = _deepspeed_estimators()
        cpu, gpu = zero2(p, num_gpus_per_node=per_node, num_nodes=nodes, cpu_offload=offload_optimizer)
        return float(gpu), float(cpu)
    if zero_stage == 1:
        if offload_optimizer:
            return 4.0 * p, p * max(4 * num_gpus, 16) * 1.5
        return 4.0 * p + 16.0 * p / num_gpus, p * 4 * per_node * 1.5
    if offload_optimizer:
        raise LimoError("ZeRO-0: CPU offload needs ZeRO stage 1 or more")
    return 20.0 * p, p * 4 * per_node * 1.5
