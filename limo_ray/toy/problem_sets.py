"""The world's problem sets, each from its own seed: the curation pool (with planted exact, case and near
duplicates), the `toy` benchmark (disjoint from the pool by construction) and the tokenizer's training chats."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.records.schema import normalize_text
from limo_ray.toy.chains import reference_chain
from limo_ray.toy.problems import NAMES, ToyProblem, generate_toy_problems
from limo_ray.toy.spec import ToySpec
from limo_ray.toy.tokenizer import render_chat


def _split_seeds(seed: int) -> dict[str, int]:
    # Distinct streams per part; the pool and the benchmark also exclude each other's texts, so they are
    # disjoint by construction, not only by seed.
    return {part: 1_000_003 * seed + i for i, part in enumerate(("benchmark", "pool", "tokenizer", "train"), 1)}


def problem_record(problem: ToyProblem, pid: str, origin: str, seed: int, extra: dict[str, str] | None = None) -> dict:
    """A jsonl record `limo_ray.records.load_problems` reads (auto -> `math` format: `type` and `level`)."""
    return {
        "id": pid,
        "problem": problem.text,
        "answer": str(problem.answer),
        "solution": reference_chain(problem, 3, seed),
        "type": problem.domain,
        "level": problem.level,
        "origin": origin,
        **(extra or {}),
    }


def _case_variant(rng: random.Random, text: str) -> str:
    """Same text up to case and spacing: equal after `normalize_text` (exact dedup's job)."""
    return text.upper() if rng.random() < 0.5 else "  ".join(text.split(" "))


def _near_variant(rng: random.Random, text: str) -> str:
    """Same problem, a small surface edit (a name swapped, the final punctuation dropped): near dedup's job."""
    words = text.split(" ")
    names = [i for i, w in enumerate(words) if w.strip(".,?") in NAMES]
    if names:
        i = rng.choice(names)
        old = words[i].strip(".,?")
        words[i] = words[i].replace(old, rng.choice([n for n in NAMES if n != old]))
        return " ".join(words)
    return text[:-1] if text[-1] in ".?" else text + "."


def benchmark_overlap(benchmark: Sequence[ToyProblem]) -> Callable[[ToyProblem], bool]:
    """Whether a problem overlaps a benchmark item by curation's own decontamination test (default settings).

    Templates make two different problems share long n-grams; a pool problem that would be removed as
    contamination is not a clean pool problem, so the pool never contains one."""
    from limo_ray.config import DecontaminateConfig
    from limo_ray.curate.decontaminate import BenchmarkIndex

    settings = DecontaminateConfig()
    index = BenchmarkIndex(settings.ngram_sizes, settings.max_ngram_items, settings.min_overlap)
    for i, problem in enumerate(benchmark):
        index.add("toy", str(i), problem.text)
    return lambda problem: bool(index.overlaps(problem.text))


def make_pool(
    spec: ToySpec, seed: int, exclude: set[str], reject: Callable[[ToyProblem], bool] | None = None
) -> list[dict[str, Any]]:
    """Pool records: fresh problems plus exact / case / near duplicates, shuffled in (metadata says which)."""
    seeds = _split_seeds(seed)
    base = generate_toy_problems(spec.pool_size, seeds["pool"], exclude=exclude, reject=reject)
    records = [problem_record(p, f"toy-pool-{i:05d}", "toy:pool", seed) for i, p in enumerate(base)]
    rng = random.Random(f"limo-ray-toy-dups:{seed}")
    kinds = (
        ["exact"] * round(spec.exact_dup_frac * len(base))
        + ["case"] * round(spec.case_dup_frac * len(base))
        + ["near"] * round(spec.near_dup_frac * len(base))
    )
    extra: list[dict[str, Any]] = []
    for kind, i in zip(kinds, rng.sample(range(len(base)), len(kinds)), strict=True):
        original = base[i]
        text = {"exact": lambda t: t, "case": lambda t: _case_variant(rng, t), "near": lambda t: _near_variant(rng, t)}[
            kind
        ](original.text)
        if kind == "near" and (
            normalize_text(text) in exclude or (reject and reject(dataclasses.replace(original, text=text)))
        ):
            continue  # a swapped name could recreate a benchmark problem
        dup = dataclasses.replace(original, text=text)
        pid = f"toy-pool-{len(base) + len(extra):05d}"
        extra.append(problem_record(dup, pid, "toy:pool", seed, {"dup_of": records[i]["id"], "dup_kind": kind}))
    merged = records + extra
    rng.shuffle(merged)
    return merged


def make_benchmark(spec: ToySpec, seed: int) -> tuple[list[ToyProblem], list[dict[str, Any]]]:
    problems_ = generate_toy_problems(spec.benchmark_size, _split_seeds(seed)["benchmark"])
    return problems_, [problem_record(p, f"toy-bench-{i:04d}", "toy:benchmark", seed) for i, p in enumerate(problems_)]


def tokenizer_corpus(spec: ToySpec, seed: int) -> list[str]:
    """Chats at every chain quality level, as the models will see them."""
    probs = generate_toy_problems(spec.tokenizer_problems, _split_seeds(seed)["tokenizer"], unique=False)
    return [
        render_chat(LIMO_SYSTEM_PROMPT, p.text, reference_chain(p, q, i))
        for i, p in enumerate(probs)
        for q in range(1, 6)
    ]
