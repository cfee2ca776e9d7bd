"""Engines: model spec -> vLLM engine (CPU or GPU), the engine actor that holds one (for Ray Data or a pool), a
pool of engine actors that outlives one run, and chat templating."""

from limo_ray.engine.actor import OUTPUT_COLUMNS, EngineActor, chat_messages, generate
from limo_ray.engine.pool import EngineCache, EnginePool
from limo_ray.engine.ray_session import init_ray
from limo_ray.engine.spec import CPU_KV_CACHE_GIB, Device, EngineSpec, device_for, engine_spec, spec_from_model_config

__all__ = [
    "CPU_KV_CACHE_GIB",
    "OUTPUT_COLUMNS",
    "Device",
    "EngineActor",
    "EngineCache",
    "EnginePool",
    "EngineSpec",
    "chat_messages",
    "device_for",
    "engine_spec",
    "generate",
    "init_ray",
    "spec_from_model_config",
]
