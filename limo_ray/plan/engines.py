"""Engine sizing for `limo plan`: per model, its GPU group and bundles, how many replicas fit the cluster, and
whether its weights plus one full-length sequence's KV cache fit its GPUs (refused with the numbers if not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from limo_ray.architectures import arch_for
from limo_ray.config import RunConfig
from limo_ray.engine.placement import check_layout, engine_replicas, replica_placement
from limo_ray.engine.spec import EngineSpec, engine_spec
from limo_ray.errors import LimoError
from limo_ray.hardware import GIB
from limo_ray.plan.assumptions import Assumptions

__all__ = ["EngineAsk", "decode_rate", "engine_ask"]

SizeClass = Literal["small", "medium", "large"]


@dataclass(frozen=True)
class EngineAsk:
    """One model's engine: its GPU group, how many replicas the stage runs, and whether it fits."""

    name: str
    model: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    world_size: int
    bundles: tuple[Mapping[str, float], ...]
    replicas: int
    strategy: str = "STRICT_PACK"  # the placement group's strategy (limo_ray.engine.placement)
    # Known only for a GPU plan of a model whose architecture is known.
    params: int | None = None
    weights_gib_per_gpu: float | None = None
    kv_gib_per_gpu_per_seq: float | None = None
    kv_capacity_tokens: int | None = None  # per replica, after weights and overhead
    memory_gib_per_gpu: float | None = None  # usable: gpu_memory_utilization x GPU memory

    @property
    def gpus(self) -> int:
        return self.replicas * sum(int(b.get("GPU", 0)) for b in self.bundles)


def _size_class(params: int | None) -> SizeClass:
    if params is None:
        return "medium"
    if params < 10e9:
        return "small"
    return "medium" if params < 100e9 else "large"


def engine_ask(
    config: RunConfig,
    name: str,
    device: Literal["cpu", "cuda"],
    gpu_mem: float | None,
    a: Assumptions,
    notes: list[str],
) -> EngineAsk:
    spec: EngineSpec = engine_spec(config, name, device)  # raises for TP/PP > 1 on CPU
    cluster = config.cluster
    model_cfg = config.models[name]
    arch = arch_for(model_cfg.path)
    ws = spec.world_size
    ask = EngineAsk(
        name=name,
        model=model_cfg.path,
        tensor_parallel_size=spec.tensor_parallel_size,
        pipeline_parallel_size=spec.pipeline_parallel_size,
        world_size=ws,
        bundles=tuple(spec.bundles()),
        replicas=1,
    )
    if device == "cpu":
        return ask

    check_layout(spec, cluster)  # more GPUs than the cluster, or a tensor-parallel group split across nodes
    placement = replica_placement(spec, cluster.gpus_per_node)
    if placement.nodes > 1:
        notes.append(
            f"model {name!r}: one replica spans {placement.nodes} nodes (TP {spec.tensor_parallel_size} within a "
            f"node, PP {spec.pipeline_parallel_size} across nodes), placed with PACK"
        )
    ask = replace(ask, replicas=engine_replicas(spec, cluster), strategy=placement.strategy)
    if arch is None:
        notes.append(
            f"model {name!r} ({model_cfg.path}): architecture unknown, memory not checked and throughput taken as "
            "a medium model's (point `path` at a local folder with config.json to check it)"
        )
        return ask

    dtype_bytes = 4 if model_cfg.dtype == "float32" else 2
    weights = arch.weight_bytes(dtype_bytes) / ws / GIB
    # TP splits KV heads (replicating them when TP exceeds the kv heads); PP splits layers.
    kv_split = min(spec.tensor_parallel_size, arch.num_kv_heads) * spec.pipeline_parallel_size
    kv_per_token = arch.kv_bytes_per_token(2) / kv_split
    kv_seq = kv_per_token * model_cfg.max_model_len / GIB
    usable = gpu_mem * model_cfg.gpu_memory_utilization if gpu_mem is not None else None
    capacity = None
    if usable is not None:
        need = weights + a.engine_overhead_gib + kv_seq
        if need > usable:
            raise LimoError(
                f"model {name!r} ({model_cfg.path}, {arch.num_params() / 1e9:.1f}B params) does not fit "
                f"TP {spec.tensor_parallel_size} x PP {spec.pipeline_parallel_size}: weights {weights:.1f} + "
                f"overhead {a.engine_overhead_gib:.1f} + one {model_cfg.max_model_len:,}-token sequence's KV cache "
                f"{kv_seq:.1f} = {need:.1f} GiB per GPU > {model_cfg.gpu_memory_utilization} x {gpu_mem:.1f} = "
                f"{usable:.1f} GiB; raise tensor_parallel_size, or lower max_model_len"
            )
        capacity = int((usable - weights - a.engine_overhead_gib) * GIB / kv_per_token)
    return replace(
        ask,
        params=arch.num_params(),
        weights_gib_per_gpu=weights,
        kv_gib_per_gpu_per_seq=kv_seq,
        kv_capacity_tokens=capacity,
        memory_gib_per_gpu=usable,
    )


def decode_rate(ask: EngineAsk, device: str, a: Assumptions) -> float:
    """Tokens/s of the whole stage: per-GPU rate x GPUs, or one CPU engine's rate."""
    if device == "cpu":
        return a.cpu_decode_tokens_per_s * ask.replicas
    return a.decode_tokens_per_s_per_gpu[_size_class(ask.params)] * ask.gpus
