"""Build the toy world once per (size, seed, code version) and cache it: tokenizer, four models, pool, benchmark.

Layout of one world, `$LIMO_RAY_CACHE/toy/<content-hash>/` (default cache `~/.cache/limo-ray`):
    weak/ strong/ strong_b/ student/   HF model folders (config.json qwen2, model.safetensors, tokenizer, chat
                                       template, generation_config.json with eos = <|im_end|>)
    pool.jsonl                         the curation pool (`toy:pool`), with injected exact and near duplicates
    benchmark.jsonl                    the `toy` benchmark, generated from a seed disjoint from the pool's
    world.json                         what was built, from what, and how long each part took

The hash covers the size's `ToySpec`, the seed, the source of the modules that decide the world's content and
the tokenizer libraries' versions, so editing a template or a model size rebuilds, and nothing else does.
A build writes into a temporary folder and renames it into place: a reader sees a whole world or none, and a
killed build leaves no half world behind. A file lock keeps two processes from building the same world twice.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import queue
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.errors import LimoError
from limo_ray.records.schema import normalize_text
from limo_ray.runfolder import write_json_atomic, write_jsonl_atomic
from limo_ray.toy import chains, models, problems, tokenizer
from limo_ray.toy.chains import reference_chain
from limo_ray.toy.models import ModelSpec, count_parameters, save_model, train_model
from limo_ray.toy.problems import DOMAINS, LEVELS, NAMES, ToyProblem, generate_toy_problems
from limo_ray.toy.tokenizer import build_tokenizer, load_tokenizer, render_chat, tokenizer_problems, train_bpe

# Bump when the world changes in a way the hashed sources do not show (e.g. a dependency's behaviour).
WORLD_VERSION = 1
CACHE_ENV = "LIMO_RAY_CACHE"
MODEL_NAMES: tuple[str, ...] = ("weak", "strong", "strong_b", "student")
Size = Literal["full", "test"]

# Chain-quality mixes (weights of L1..L5), named for what they teach.
_TERSE = (0.2, 0.8, 0.0, 0.0, 0.0)  # mostly bare equations: the weak model's style...
_GUESS = (0.6, 0.4, 0.0, 0.0, 0.0)  # ...and on the harder levels it mostly just guesses
_GOOD = (0.0, 0.1, 0.3, 0.2, 0.4)  # mostly explained chains: the strong model's style
_GOOD_B = (0.0, 0.1, 0.2, 0.2, 0.5)
_SHORT_GOOD = (0.0, 0.2, 0.5, 0.1, 0.2)  # the same styles, shorter on average: more steps per second
_SHOWN = (0.5, 0.0, 0.5, 0.0, 0.0)  # the test-size student sees worked steps on easy problems...
_BLURT = (0.85, 0.0, 0.15, 0.0, 0.0)  # ...and mostly bare answers on hard ones
# The full-size student is LIMO's base model in miniature: it can reason (it branches from the strong model's
# run) but its habit on hard problems is to state a bare answer, as an instruct model answers tersely. Greedy
# decoding follows the habit; a few hundred good chains change the habit, not the skill.
_ANSWER_ONLY = (0.7, 0.0, 0.0, 0.1, 0.2)


@dataclass(frozen=True)
class ToySpec:
    """Every number that shapes one size of the toy world (the tuned calibration lives here)."""

    size: str
    vocab_size: int
    tokenizer_problems: int
    pool_size: int
    benchmark_per_cell: int  # benchmark problems per (domain, level) cell
    exact_dup_frac: float  # pool rows repeated verbatim under a new id
    case_dup_frac: float  # repeated with case / spacing changed (equal after normalisation)
    near_dup_frac: float  # repeated with a small edit (punctuation dropped, a name swapped)
    weak: ModelSpec
    strong: ModelSpec
    strong_b: ModelSpec
    student: ModelSpec

    def model_specs(self) -> tuple[ModelSpec, ...]:
        return (self.weak, self.strong, self.strong_b, self.student)

    @property
    def benchmark_size(self) -> int:
        return self.benchmark_per_cell * len(DOMAINS) * len(LEVELS)


def _spec(name: str, size: tuple[int, int, int, int, int], steps: int, lr: float, seed: int, **mix: Any) -> ModelSpec:
    hidden, layers, heads, kv_heads, intermediate = size
    return ModelSpec(
        name=name,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        steps=steps,
        batch_size=mix.pop("batch_size", 16),
        lr=lr,
        seed=seed,
        **mix,
    )


TOY_SPECS: dict[str, ToySpec] = {
    "full": ToySpec(
        size="full",
        vocab_size=1024,
        tokenizer_problems=3000,
        pool_size=2000,  # the tiny preset curates all of it within its 8-minute budget
        benchmark_per_cell=15,
        exact_dup_frac=0.02,
        case_dup_frac=0.02,
        near_dup_frac=0.03,
        weak=_spec(
            "weak", (128, 2, 4, 2, 384), 3400, 1e-3, 1,
            level_weights=(0.36, 0.36, 0.2, 0.08, 0.0), quality_by_level=(_TERSE, _TERSE, _GUESS, _GUESS, _GUESS),
        ),
        strong=_spec(
            "strong", (128, 3, 4, 2, 384), 2000, 1e-3, 2,
            level_weights=(0.15, 0.15, 0.2, 0.25, 0.25), quality_by_level=(_GOOD,) * 5,
        ),
        strong_b=_spec(
            "strong_b", (128, 3, 4, 2, 384), 2000, 1e-3, 3,
            level_weights=(0.15, 0.15, 0.2, 0.25, 0.25), quality_by_level=(_GOOD_B,) * 5,
            branch_of="strong", branch_at=0.75,
        ),
        student=_spec(
            "student", (128, 3, 4, 2, 384), 2000, 1e-3, 4,
            level_weights=(0.2,) * 5, quality_by_level=(_GOOD, _GOOD, _ANSWER_ONLY, _ANSWER_ONLY, _ANSWER_ONLY),
            branch_of="strong", branch_at=0.8,
        ),
    ),
    "test": ToySpec(
        size="test",
        vocab_size=1024,
        tokenizer_problems=1000,
        pool_size=600,
        benchmark_per_cell=5,
        exact_dup_frac=0.02,
        case_dup_frac=0.02,
        near_dup_frac=0.03,
        # A third of the full world's compute. The strong model's chains are long, so it takes one lane; the weak
        # one (short chains) trains as many steps in the other, on the easy levels only: it drops most easy
        # problems and so "strong beats weak at the top" holds.
        weak=_spec(
            "weak", (128, 2, 4, 2, 384), 2000, 1e-3, 1,
            level_weights=(0.5, 0.4, 0.1, 0.0, 0.0), quality_by_level=(_TERSE, _TERSE, _GUESS, _GUESS, _GUESS),
        ),
        strong=_spec(
            "strong", (128, 2, 4, 2, 384), 1300, 1e-3, 2,
            level_weights=(0.3, 0.25, 0.2, 0.15, 0.1), quality_by_level=(_SHORT_GOOD,) * 5,
        ),
        strong_b=_spec(
            "strong_b", (128, 2, 4, 2, 384), 1300, 1e-3, 3,
            level_weights=(0.15, 0.15, 0.2, 0.25, 0.25), quality_by_level=(_GOOD_B,) * 5,
            branch_of="strong", branch_at=0.85,
        ),
        student=_spec(
            "student", (64, 2, 2, 1, 192), 600, 1.5e-3, 4,
            level_weights=(0.2,) * 5, quality_by_level=(_SHOWN, _SHOWN, _BLURT, _BLURT, _BLURT),
        ),
    ),
}  # fmt: skip


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


# ----------------------------------------------------------------------------------------------- cache


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    base = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "limo-ray"
    return Path(base).expanduser() / "toy"


def toy_spec(size: str) -> ToySpec:
    if size not in TOY_SPECS:
        raise LimoError(f"unknown toy world size {size!r}; use one of {', '.join(TOY_SPECS)}")
    return TOY_SPECS[size]


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
    for source in (problems.__file__, chains.__file__, tokenizer.__file__, models.__file__, __file__):
        digest.update(Path(source or "").read_bytes())
    return digest.digest()


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
        tmp = Path(tempfile.mkdtemp(prefix=f".{content_hash}.", suffix=".tmp", dir=root.parent))
        try:
            _build_into(tmp, spec, seed, content_hash, progress)
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return _world_at(root, spec, seed, content_hash)


# ----------------------------------------------------------------------------------------------- the build


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


def _build_into(out: Path, spec: ToySpec, seed: int, content_hash: str, progress: bool) -> None:
    timings: dict[str, float] = {}
    began = time.perf_counter()

    bench_problems, bench_records = make_benchmark(spec, seed)
    bench_texts = {normalize_text(p.text) for p in bench_problems}
    pool_records = make_pool(spec, seed, exclude=bench_texts, reject=benchmark_overlap(bench_problems))
    write_jsonl_atomic(out / "benchmark.jsonl", bench_records)
    write_jsonl_atomic(out / "pool.jsonl", pool_records)
    # Models never train on a pool or benchmark problem: both stay unseen, as in the real recipe.
    held_out = bench_texts | {normalize_text(r["problem"]) for r in pool_records}
    timings["problems_s"] = time.perf_counter() - began

    mark = time.perf_counter()
    corpus = tokenizer_corpus(spec, seed)
    vocab, merges = train_bpe(corpus, spec.vocab_size)
    tok_dir = out / "tokenizer"
    build_tokenizer(vocab, merges).save_pretrained(str(tok_dir))
    # Reload it the way transformers and vLLM will: a qwen2 config.json next to it picks Qwen2Tokenizer.
    tok = load_tokenizer(tok_dir)
    models.qwen2_config(spec.weak, tok).save_pretrained(str(tok_dir))
    tok = load_tokenizer(tok_dir)
    bad = tokenizer_problems(tok, random.Random(seed).sample(corpus, min(500, len(corpus))))
    if bad:
        raise RuntimeError(f"toy tokenizer does not round-trip after reload: {bad[:3]}")
    timings["tokenizer_s"] = time.perf_counter() - mark

    total = sum(s.steps - int(s.steps * s.branch_at) for s in spec.model_specs())
    bar = _progress_bar(total, progress, f"toy world ({spec.size})")
    try:
        results = _train_all(spec, seed, tok_dir, out, held_out, bar)
    finally:
        bar.close()
    timings.update({f"{name}_s": stats["seconds"] for name, stats in results.items()})
    timings["training_wall_s"] = time.perf_counter() - mark - timings["tokenizer_s"]
    shutil.rmtree(tok_dir)
    shutil.rmtree(out / SNAPSHOT_DIR, ignore_errors=True)

    for name in MODEL_NAMES:  # every folder must load back with the very ids the models trained on
        again = load_tokenizer(out / name)
        if again(corpus[:50])["input_ids"] != tok(corpus[:50])["input_ids"]:
            raise RuntimeError(f"toy model folder {name}: tokenizer ids changed after reload")
    timings["total_s"] = round(time.perf_counter() - began, 1)
    write_json_atomic(
        out / "world.json",
        {
            "content_hash": content_hash,
            "size": spec.size,
            "seed": seed,
            "world_version": WORLD_VERSION,
            "spec": dataclasses.asdict(spec),
            "vocab_size": len(tok),
            "pool_rows": len(pool_records),
            "benchmark_rows": len(bench_records),
            "models": results,
            "timings": {k: round(v, 1) for k, v in timings.items()},
            "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


# ----------------------------------------------------------------------------------------------- training lanes
#
# The four models train in up to two "lanes", each a process with one torch thread: tiny matrices do not scale
# across threads, and two OpenMP threads on a two-core machine that is busy with anything else spin-wait so
# badly that a step was measured 10x slower than with one thread. A branch (strong_b, student) starts from its
# parent's snapshot, which the parent writes to disk as it passes that step: the branch may run in the other
# lane, as soon as the snapshot exists, while its parent goes on training.

SNAPSHOT_DIR = ".snapshots"


def _chat_chars(m: ModelSpec) -> float:
    # Chain styles differ several-fold in length (a bare answer vs a self-checked chain): sample the mix.
    return sum(len(p) + len(r) for p, r in itertools.islice(models.training_chats(m, 0), 64)) / 64


def _cost(m: ModelSpec) -> float:
    """Relative training time of a model's own steps (a branch pays only for the steps after its start)."""
    return (
        (m.steps - int(m.steps * m.branch_at))
        * m.batch_size
        * _chat_chars(m)
        * m.layers
        * m.hidden
        * (4 * m.hidden + 3 * m.intermediate)
    )


def _lanes(spec: ToySpec, count: int) -> list[list[ModelSpec]]:
    """Split the models into `count` lanes that finish at about the same time.

    Every lane trains its root models (no parent) first, so a branch waits only on a root that is already
    running: no two lanes can wait on each other. A branch then goes where it can start and finish earliest,
    counting the time its parent needs to reach the branch point.
    """
    specs = {m.name: m for m in spec.model_specs()}
    roots = [m for m in specs.values() if m.branch_of is None]
    branches = [m for m in specs.values() if m.branch_of is not None]
    for b in branches:
        if b.branch_of not in specs or specs[b.branch_of].branch_of is not None:
            raise ValueError(f"{b.name}: branch_of must name a model that is not itself a branch")
        if b.steps != specs[b.branch_of].steps:
            raise ValueError(f"{b.name}: a branch continues its parent's schedule: its steps must be its parent's")
    lanes: list[list[ModelSpec]] = [[] for _ in range(max(1, min(count, len(roots))))]
    loads = [0.0] * len(lanes)
    started: dict[str, float] = {}
    for root in sorted(roots, key=_cost, reverse=True):
        i = loads.index(min(loads))
        lanes[i].append(root)
        started[root.name] = loads[i]
        loads[i] += _cost(root)
    for branch in sorted(branches, key=_cost, reverse=True):
        parent = specs[branch.branch_of or ""]
        ready = started[parent.name] + branch.branch_at * _cost(parent)
        ends = [max(load, ready) + _cost(branch) for load in loads]
        i = ends.index(min(ends))
        lanes[i].append(branch)
        loads[i] = ends[i]
    return lanes


def _snapshot_path(out: Path, parent: str, step: int) -> Path:
    return out / SNAPSHOT_DIR / f"{parent}-{step}.pt"


def _save_snapshot(out: Path, parent: str, state: dict[str, Any]) -> None:
    import torch

    path = _snapshot_path(out, parent, state["step"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a reader sees a whole snapshot or none


def _wait_for_snapshot(out: Path, parent: str, step: int, alive: Callable[[], None]) -> dict[str, Any]:
    import torch

    path = _snapshot_path(out, parent, step)
    while not path.exists():
        alive()
        time.sleep(0.5)
    return torch.load(path, weights_only=False)


def _train_lane(
    lane: list[ModelSpec],
    spec: ToySpec,
    seed: int,
    tok_dir: Path,
    out: Path,
    held_out: set[str],
    report: Callable[[tuple[Any, ...]], None],
    alive: Callable[[], None] = lambda: None,
) -> None:
    """Train a lane's models in order and save each; `report` gets ("step", name, loss) and ("done", name, stats)."""
    tok = load_tokenizer(tok_dir)
    for model_spec in lane:
        name = model_spec.name
        branch_steps = {int(b.steps * b.branch_at) for b in spec.model_specs() if b.branch_of == name}
        start = None
        if model_spec.branch_of is not None:
            start = _wait_for_snapshot(out, model_spec.branch_of, int(model_spec.steps * model_spec.branch_at), alive)
        run = train_model(
            model_spec,
            tok,
            seed,
            exclude=held_out,
            snapshot_steps=branch_steps,
            on_snapshot=lambda state, name=name: _save_snapshot(out, name, state),
            start=start,
            on_step=lambda step, loss, name=name: report(("step", name, loss)),
        )
        save_model(run.model, tok, out / name)
        stats = {
            "parameters": count_parameters(run.model),
            "seconds": round(run.seconds, 1),
            "tokens": run.tokens,
            "tokens_per_s": round(run.tokens / max(run.seconds, 1e-9)),
            "first_loss": round(run.losses[0], 4) if run.losses else None,
            "final_loss": round(sum(run.losses[-20:]) / max(1, len(run.losses[-20:])), 4),
        }
        report(("done", name, stats))


def _lane_process(
    lane: list[ModelSpec], spec: ToySpec, seed: int, tok_dir: Path, out: Path, held_out: set[str], channel: Any
) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the lanes already fill the cores
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()  # this process only: one bar (the parent's) is enough
    parent = multiprocessing.parent_process()
    sent = 0

    def alive() -> None:
        # A killed build must not leave lanes training for nobody (daemon children outlive a SIGKILLed parent).
        if parent is not None and not parent.is_alive():
            raise SystemExit(1)

    def report(message: tuple[Any, ...]) -> None:
        nonlocal sent
        sent += 1
        if sent % 50 == 0:
            alive()
        channel.put(message)

    try:
        _train_lane(lane, spec, seed, tok_dir, out, held_out, report, alive)
        channel.put(("lane_done", "", None))
    except BaseException:
        channel.put(("error", "", traceback.format_exc()))


def _train_all(spec: ToySpec, seed: int, tok_dir: Path, out: Path, held_out: set[str], bar: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    seen_loss: dict[str, float] = {}

    def on_message(message: tuple[Any, ...]) -> None:
        kind, name, payload = message
        if kind == "step":
            bar.update(1)
            seen_loss[name] = payload
            bar.set_postfix_str(" ".join(f"{n} {v:.3f}" for n, v in seen_loss.items()), refresh=False)
        elif kind == "done":
            results[name] = payload

    lanes = _lanes(spec, min(2, os.cpu_count() or 1))
    if len(lanes) == 1:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _train_lane(lanes[0], spec, seed, tok_dir, out, held_out, on_message)
        finally:
            torch.set_num_threads(previous)
        return results

    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold Ray or vLLM threads
    channel = ctx.Queue()
    procs = [
        ctx.Process(target=_lane_process, args=(lane, spec, seed, tok_dir, out, held_out, channel), daemon=True)
        for lane in lanes
    ]
    for proc in procs:
        proc.start()
    try:
        running = len(procs)
        while running:
            try:
                message = channel.get(timeout=2.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a toy training process died (exit code {dead[0].exitcode})") from None
                continue
            if message[0] == "error":
                raise RuntimeError(f"toy model training failed:\n{message[2]}")
            if message[0] == "lane_done":
                running -= 1
            else:
                on_message(message)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        channel.close()
        channel.join_thread()
    return results


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, text: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _progress_bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


def load_world_problems(world: ToyWorld, which: Literal["pool", "benchmark"]) -> list[dict[str, Any]]:
    """The raw jsonl records of the pool or the benchmark (for reports and tests)."""
    path = world.pool if which == "pool" else world.benchmark
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = [
    "MODEL_NAMES",
    "TOY_SPECS",
    "ToySpec",
    "ToyWorld",
    "build_toy_world",
    "cache_root",
    "make_benchmark",
    "make_pool",
    "toy_spec",
    "world_hash",
]
