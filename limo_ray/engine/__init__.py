"""Engines: model spec -> vLLM engine (CPU or GPU), the Ray Data stage that holds one, a pool of engine actors
that outlives one run, and chat templating."""

from limo_ray.engine.pool import EngineCache, EnginePool
from limo_ray.engine.ray_session import init_ray
from limo_ray.engine.spec import CPU_KV_CACHE_GIB, Device, EngineSpec, device_for, engine_spec, spec_from_model_config
from limo_ray.engine.stage import OUTPUT_COLUMNS, VLLMStage, chat_messages, generate

__all__ = [
    "CPU_KV_CACHE_GIB",
    "OUTPUT_COLUMNS",
    "Device",
    "EngineCache",
    "EnginePool",
    "EngineSpec",
    "VLLMStage",
    "chat_messages",
    "device_for",
    "engine_spec",
    "generate",
    "init_ray",
    "spec_from_model_config",
]
