"""The registry of evaluation sets: where each lives, how to read and grade it, the paper's decoding and scores.

Curation (decontamination) and evaluation read the same entries, so "which benchmarks exist" is one list.
Data is read from a data root at run time and never copied into the project. Users add their own sets with a
YAML file of entries in the same schema (`benchmarks.registry_files` in the run config).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from limo_ray.config import BenchmarksConfig, DecodingConfig, EvalConfig, StrictModel, parse_yaml
from limo_ray.errors import LimoError
from limo_ray.records import FORMAT_NAMES, LoadResult, load_problems

BUILTIN_REGISTRY = Path(__file__).with_name("registry.yaml")
DATA_ROOT_ENV = "LIMO_RAY_DATA"


class Benchmark(StrictModel):
    name: str
    title: str
    path: str
    format: str = "auto"
    items: int | None = Field(default=None, gt=0, description="expected number of items, checked on load")
    grading: Literal["math", "choice", "judge"] = "math"
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    paper: dict[str, float] = Field(default_factory=dict)

    def resolve_path(self, data_root: str | None) -> str:
        """The file to read: an absolute path or URI as is, a relative one under the data root."""
        if "://" in self.path or Path(self.path).is_absolute():
            return self.path
        root = data_root or os.environ.get(DATA_ROOT_ENV)
        if not root:
            raise LimoError(
                f"benchmark {self.name!r} is a relative path ({self.path}): set benchmarks.data_root in the config "
                f"or ${DATA_ROOT_ENV} to the folder that holds it"
            )
        return f"{root.rstrip('/')}/{self.path}"


@dataclass(frozen=True)
class LoadedBenchmark:
    benchmark: Benchmark
    result: LoadResult


class BenchmarkRegistry:
    """An ordered, read-only name -> Benchmark map (built-ins first, then user files in the order given)."""

    def __init__(self, benchmarks: Iterable[Benchmark]) -> None:
        self._by_name: dict[str, Benchmark] = {}
        for bench in benchmarks:
            self._by_name[bench.name] = bench

    @classmethod
    def from_files(cls, files: Iterable[str | Path] = (), paths: Mapping[str, str] | None = None) -> BenchmarkRegistry:
        """The built-in registry, then `files`; `paths` replaces named entries' files."""
        entries: list[Benchmark] = []
        for path in [BUILTIN_REGISTRY, *files]:
            entries.extend(_read_registry_file(Path(path)))
        overrides = dict(paths or {})
        unknown = sorted(set(overrides) - {e.name for e in entries})
        if unknown:
            raise LimoError(f"benchmarks.paths names unknown benchmarks: {', '.join(unknown)}")
        return cls(e.model_copy(update={"path": overrides[e.name]}) if e.name in overrides else e for e in entries)

    @classmethod
    def from_config(cls, benchmarks: BenchmarksConfig) -> BenchmarkRegistry:
        return cls.from_files(benchmarks.registry_files, benchmarks.paths)

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Benchmark:
        try:
            return self._by_name[name]
        except KeyError:
            raise LimoError(f"unknown benchmark {name!r}; registered: {', '.join(self._by_name)}") from None

    def select(self, names: Iterable[str] | Literal["all"]) -> list[Benchmark]:
        return list(self._by_name.values()) if names == "all" else [self.get(n) for n in names]

    def load(self, name: str, data_root: str | None = None) -> LoadedBenchmark:
        """Read a benchmark's items as Problems; every row is kept or quarantined with a reason."""
        bench = self.get(name)
        result = load_problems([bench.resolve_path(data_root)], fmt=bench.format)
        if bench.items is not None and result.rows_in != bench.items:
            raise LimoError(
                f"benchmark {name!r}: expected {bench.items} items in {bench.resolve_path(data_root)}, "
                f"found {result.rows_in}: is it the same release the registry describes?"
            )
        return LoadedBenchmark(bench, result)

    def available(
        self, names: Iterable[str] | Literal["all"], data_root: str | None
    ) -> tuple[list[Benchmark], list[str]]:
        """(benchmarks whose data can be read, "name: why not" for the others)."""
        present, missing = [], []
        for bench in self.select(names):
            try:
                path = bench.resolve_path(data_root)
            except LimoError as exc:
                missing.append(f"{bench.name}: {exc}")
                continue
            if "://" in path or Path(path).is_file():
                present.append(bench)
            else:
                missing.append(f"{bench.name}: {path} not found")
        return present, missing

    def decoding_for(self, name: str, eval_config: EvalConfig | None = None) -> DecodingConfig:
        """The run's override for this benchmark if it has one, else the paper's decoding."""
        if eval_config is not None and name in eval_config.decoding:
            return eval_config.decoding[name]
        return self.get(name).decoding

    def paper_table(self, names: Iterable[str] | None = None) -> dict[str, dict[str, float]]:
        """{benchmark: {system: pass@1}} from the paper, for reports to print beside our numbers."""
        chosen = self.names() if names is None else list(names)
        return {n: dict(self.get(n).paper) for n in chosen if self.get(n).paper}


def _read_registry_file(path: Path) -> list[Benchmark]:
    if not path.is_file():
        raise LimoError(f"benchmark registry file {path} does not exist")
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, Mapping):
        raise LimoError(f"{path}: a benchmark registry is a mapping of name -> entry")
    entries = []
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise LimoError(f"{path}: benchmark {name!r} must be a mapping of settings")
        try:
            bench = Benchmark.model_validate({"name": str(name), **_defaults(entry)})
        except ValidationError as exc:
            problems = "; ".join(f"`{'.'.join(map(str, e['loc']))}`: {e['msg']}" for e in exc.errors())
            raise LimoError(f"{path}: benchmark {name!r}: {problems}") from None
        if bench.format not in FORMAT_NAMES:
            raise LimoError(
                f"{path}: benchmark {name!r}: unknown format {bench.format!r} (known: {', '.join(FORMAT_NAMES)})"
            )
        entries.append(bench)
    return entries


def _defaults(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"title": entry.get("title", ""), **entry} if "title" not in entry else dict(entry)
