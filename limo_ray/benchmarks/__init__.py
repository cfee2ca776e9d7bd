"""Registry of evaluation sets, shared by decontamination (curate) and evaluation."""

from limo_ray.benchmarks.registry import (
    BUILTIN_REGISTRY,
    DATA_ROOT_ENV,
    Benchmark,
    BenchmarkRegistry,
    LoadedBenchmark,
)

__all__ = ["BUILTIN_REGISTRY", "DATA_ROOT_ENV", "Benchmark", "BenchmarkRegistry", "LoadedBenchmark"]
