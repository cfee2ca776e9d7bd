"""Build one toy world into a folder: the problem sets, the tokenizer (trained, then reloaded as transformers
and vLLM will), the four models (trained in lanes), the checks that every folder loads back, and world.json."""

from __future__ import annotations

import dataclasses
import random
import shutil
import time
from pathlib import Path

from limo_ray.records.schema import normalize_text
from limo_ray.runfolder import write_json_atomic, write_jsonl_atomic
from limo_ray.toy import models
from limo_ray.toy.lanes import SNAPSHOT_DIR, train_models
from limo_ray.toy.problem_sets import benchmark_overlap, make_benchmark, make_pool, tokenizer_corpus
from limo_ray.toy.progress import build_progress
from limo_ray.toy.spec import MODEL_NAMES, WORLD_VERSION, ToySpec
from limo_ray.toy.tokenizer import build_tokenizer, load_tokenizer, tokenizer_problems, train_bpe


def build_into(out: Path, spec: ToySpec, seed: int, content_hash: str, progress: bool) -> None:
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
    bar = build_progress(total, progress, f"toy world ({spec.size})")
    try:
        results = train_models(spec, seed, tok_dir, out, held_out, bar)
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
