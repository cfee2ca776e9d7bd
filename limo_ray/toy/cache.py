"""Build the toy world once per (size, seed, code version) and cache it: tokenizer, four models, pool, benchmark.

Layout of one world, `$LIMO_RAY_CACHE/toy/<content-hash>/` (default cache `~/.cache/limo-ray`):
    weak/ strong/ strong_b/ student/   HF model folders (config.json qwen2, model.safetensors, tokenizer, chat
                                       template, generation_config.json with eos = <|im_end|>)
    pool.jsonl                         the curation pool (`toy:pool`), with injected exact and near duplicates
    benchmark.jsonl                    the `toy` benchmark, generated from a seed disjoint from the pool's
    world.json                         what was built, from what, and how long each part took

The hash covers the size's `ToySpec`, the seed, the code of the modules that decide the world's content
(`CONTENT_MODULES`) and the tokenizer libraries' versions, so editing a template or a model size rebuilds, and
nothing else does. The code is hashed as its syntax tree without docstrings (`code_digest`): a build takes minutes,
and a comment, a docstring or a reformat changes nothing a world contains. (The tree's printed form may differ
between Python versions, so a new Python builds its own worlds once.)
A build writes into a temporary folder and renames it into place: a reader sees a whole world or none, and a
killed build leaves no half world behind. A file lock keeps two processes from building the same world twice.
"""

from __future__ import annotations

import ast
import dataclasses
import fcntl
import functools
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.errors import LimoError
from limo_ray.toy.build import build_into
from limo_ray.toy.spec import MODEL_NAMES, WORLD_VERSION, Size, ToySpec, toy_spec

CACHE_ENV = "LIMO_RAY_CACHE"
# The modules of limo_ray.toy whose code decides what a world contains (and where it is cached): the world hash
# covers their code, so changing what any of them does rebuilds the world. `references` and `report` only read a
# world, and `progress` only reports a build.
CONTENT_MODULES = ("problems", "chains", "tokenizer", "models", "spec", "problem_sets", "lanes", "build", "cache")


@dataclass(frozen=True)
class ToyWorld:
    """A built world: where its parts are."""

    root: Path
    size: str
    seed: int
    content_hash: str
    models: dict[str, Path]
    pool: Path
    benchmark: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.root / "world.json").read_text(encoding="utf-8"))

    def path(self, name: str) -> Path:
        """`weak` / `strong` / `strong_b` / `student` / `pool` / `benchmark` -> its file or folder."""
        if name in self.models:
            return self.models[name]
        if name in ("pool", "benchmark"):
            return self.pool if name == "pool" else self.benchmark
        known = ", ".join([*self.models, "pool", "benchmark"])
        raise LimoError(f"the toy world has no {name!r}; known: {known}")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    base = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "limo-ray"
    return Path(base).expanduser() / "toy"


def world_hash(spec: ToySpec, seed: int) -> str:
    """Content hash of a world: spec, seed, the content-deciding sources, library versions."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    blob = {
        "version": WORLD_VERSION,
        "spec": dataclasses.asdict(spec),
        "seed": seed,
        # Versions from package metadata: importing transformers would cost a cache hit seconds.
        "libs": [version("transformers"), version("tokenizers")],
        "system": LIMO_SYSTEM_PROMPT,
    }
    digest.update(json.dumps(blob, sort_keys=True).encode())
    digest.update(_source_digest())
    return f"{spec.size}-{digest.hexdigest()[:16]}"


@functools.cache
def _source_digest() -> bytes:
    # Read once per process: the code that runs is the code that was imported, even if the files change later.
    digest = hashlib.sha256()
    for name in CONTENT_MODULES:
        module = importlib.import_module(f"limo_ray.toy.{name}")
        digest.update(code_digest(Path(module.__file__ or "").read_text(encoding="utf-8")))
    return digest.digest()


def code_digest(source: str) -> bytes:
    """A digest of what `source` does: its syntax tree without docstrings (comments and layout never reach it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and _has_docstring(
            node
        ):
            node.body = node.body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).digest()


def _has_docstring(node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _world_at(root: Path, spec: ToySpec, seed: int, content_hash: str) -> ToyWorld:
    return ToyWorld(
        root=root,
        size=spec.size,
        seed=seed,
        content_hash=content_hash,
        models={name: root / name for name in MODEL_NAMES},
        pool=root / "pool.jsonl",
        benchmark=root / "benchmark.jsonl",
    )


def _is_complete(root: Path) -> bool:
    return (root / "world.json").is_file()


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_toy_world(
    size: Size | str = "full",
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    spec: ToySpec | None = None,
) -> ToyWorld:
    """The toy world of `size` and `seed`: from the cache when built before (a second call takes well under a
    second), else built now (full size: a few minutes on two CPU cores; test size: about a minute)."""
    spec = spec or toy_spec(size)
    content_hash = world_hash(spec, seed)
    root = cache_root(cache_dir) / content_hash
    if _is_complete(root):
        return _world_at(root, spec, seed, content_hash)
    if getattr(sys.modules.get("__main__"), "__name__", "") == "__mp_main__":
        # A training lane (a spawned process) is re-running an unguarded script: it would wait on the lock
        # its own parent holds, forever.
        raise LimoError(
            "build_toy_world() ran while a spawned process imported the main script: put the script's code "
            'under `if __name__ == "__main__":`'
        )
    with _lock(root.parent / f".{content_hash}.lock"):
        if _is_complete(root):  # another process built it while we waited
            return _world_at(root, spec, seed, content_hash)
        if root.exists():  # a folder without world.json is debris, never a world
            shutil.rmtree(root)
        # A build killed by a signal Python does not turn into an exception (SIGTERM, SIGKILL) leaves its
        # temporary folder: under the lock nobody else builds this world, so any such folder is debris.
        for debris in root.parent.glob(f".{content_hash}.*.tmp"):
            shutil.rmtree(debris, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{content_hash}.", suffix=".tmp", dir=root.parent))
        try:
            build_into(tmp, spec, seed, content_hash, progress)
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _world_at(root, spec, seed, content_hash)


def load_world_problems(world: ToyWorld, which: Literal["pool", "benchmark"]) -> list[dict[str, Any]]:
    """The raw jsonl records of the pool or the benchmark (for reports and tests)."""
    path = world.pool if which == "pool" else world.benchmark
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
