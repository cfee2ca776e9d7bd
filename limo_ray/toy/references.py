"""`toy:` references -> concrete paths, once, where a command starts (CLI, job entry, bench).

A config may name parts of the toy world (`toy:weak`, `toy:pool`, the registry's `toy:benchmark`). The entry
step `resolve_references` rewrites every such reference into its path inside the world's cache folder, which is
named by the world's content hash. That path is known without building the world: the hash covers the spec,
the seed and the sources that decide the world's content. So the resolved config carries the world's identity
(a rebuilt world has another folder, so no output made from the old one is reused), and the world is built
only when the command will read one of those paths. `limo curate --pool FILE --until dedup` never does.
Nothing below the entry step sees a `toy:` reference.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from limo_ray.config import RunConfig, ToyConfig
from limo_ray.errors import LimoError
from limo_ray.toy.cache import build_toy_world, cache_root, world_hash
from limo_ray.toy.spec import MODEL_NAMES, toy_spec

SCHEME = "toy:"
WORLD_PARTS: tuple[str, ...] = (*MODEL_NAMES, "pool", "benchmark")
_FILES = {"pool": "pool.jsonl", "benchmark": "benchmark.jsonl"}


def is_toy_reference(path: str | None) -> bool:
    return path is not None and path.startswith(SCHEME)


def world_folder(toy: ToyConfig, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the world of `toy.size` / `toy.seed` lives once built (nothing is built or read here)."""
    return cache_root(cache_dir) / world_hash(toy_spec(toy.size), toy.seed)


def toy_location(reference: str, toy: ToyConfig, cache_dir: str | os.PathLike[str] | None = None) -> str:
    """`toy:<part>` -> the path of that part in the (possibly not yet built) world."""
    if not is_toy_reference(reference):
        raise LimoError(f"{reference!r} is not a toy world path (toy:<name>)")
    part = reference.removeprefix(SCHEME)
    if part not in WORLD_PARTS:
        raise LimoError(f"unknown toy world path {reference!r}; use toy:{', toy:'.join(WORLD_PARTS)}")
    return str(world_folder(toy, cache_dir) / _FILES.get(part, part))


def resolve_references(
    config: RunConfig,
    reads: Callable[[RunConfig], Iterable[str]] | None = None,
    *,
    extra: Iterable[str] = (),
    progress: bool = True,
) -> RunConfig:
    """The config with every `toy:` reference replaced by its path; the world is built if the command needs it.

    `reads(resolved)` lists the paths the command will open (default: every path the config names, plus
    `extra`); the world is built (or found in the cache) only when one of them lies inside it.
    """
    from limo_ray.benchmarks import BenchmarkRegistry

    def concrete(path: str) -> str:
        return toy_location(path, config.toy) if is_toy_reference(path) else path

    models = {
        name: model.model_copy(
            update={"path": concrete(model.path), "tokenizer": model.tokenizer and concrete(model.tokenizer)}
        )
        for name, model in config.models.items()
    }
    pool = config.curate.pool.model_copy(update={"sources": [concrete(s) for s in config.curate.pool.sources]})
    registry = BenchmarkRegistry.from_files(config.benchmarks.registry_files)
    bench_paths = {b.name: concrete(b.path) for b in registry.select("all") if is_toy_reference(b.path)} | {
        name: concrete(path) for name, path in config.benchmarks.paths.items()
    }
    resolved = config.model_copy(
        update={
            "models": models,
            "curate": config.curate.model_copy(update={"pool": pool}),
            "benchmarks": config.benchmarks.model_copy(update={"paths": bench_paths}),
        }
    )
    needed = [*(reads(resolved) if reads is not None else config_paths(resolved)), *map(concrete, extra)]
    ensure_world(config.toy, needed, progress=progress)
    return resolved


def config_paths(config: RunConfig) -> list[str]:
    """Every file or model path a config names."""
    models = [p for m in config.models.values() for p in (m.path, m.tokenizer) if p is not None]
    return [*models, *config.curate.pool.sources, *config.benchmarks.paths.values()]


def ensure_world(toy: ToyConfig, paths: Iterable[str], progress: bool = True) -> None:
    """Build (or find in the cache) the toy world if any of `paths` lies inside it."""
    folder = world_folder(toy)
    if any(Path(p).is_relative_to(folder) for p in paths if "://" not in p):
        build_toy_world(toy.size, toy.seed, progress=progress)
