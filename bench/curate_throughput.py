"""Curation throughput: the weak-filter stage (generate + grade + store + ledger) vs bare vLLM, same requests.

Pinned workload: a seeded sample of toy-pool problems (full-size world), the weak toy model, the tiny preset's
weak sampling, every problem drawn k=4 times in one round (`n=4` per request) so every side sends exactly the
same requests: same chat-templated prompts (`build_prompts`), same sampling parameters, same engine settings.
(a) bare, capped: one `vllm.LLM` in its own process computing on the engine actor's thread count (one on CPU),
    timed from engine ready to its last output;
(b) bare, uncapped: the same on vLLM's default threads (every core), as a user's own script would run it;
(c) pipeline: `run_stage(WeakFilter)` in a local Ray, the run's engine actor (its one thread), grading in the
    driver, each batch stored in the generation cache as it arrives, decisions + manifest + ledger written;
    timed from its engine reporting ready to the ledger on disk.
Engine start-up is excluded from all. One warm-up round of each, then >= 5 interleaved cycles (a b c a b c ...).

The ratio printed last is pipeline / bare capped: the engine computes on the same number of threads on both
sides, so the ratio measures what the stage adds around the engine. Pipeline / bare uncapped is printed before
it: it also counts the cores the pipeline leaves to its driver instead of the engine.

    .venv/bin/python bench/curate_throughput.py --pairs 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

ATTEMPTS = 4


def pipeline_round(config: Any, problems: list[Any], run_dir: Path) -> dict[str, float]:
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.ledger import rebuild_ledger
    from limo_ray.curate.pipeline import build_stage
    from limo_ray.curate.problem_table import write_problems
    from limo_ray.curate.stage import run_stage

    ctx = CurateContext(run_dir=run_dir, cluster=config.cluster, log=lambda _: None)
    write_problems(problems, ctx.stage_dir("ingest") / "problems.parquet")  # the ledger's row set
    try:
        outcome = run_stage(ctx, build_stage(config, "weak_filter"), problems, "bench")
    finally:
        ctx.engines.close()
    rebuild_ledger(ctx.curate_dir, ["weak_filter"])
    done = time.time()
    timings = outcome.manifest.extra["timings"]
    return {"tokens": outcome.manifest.extra["tokens"], "seconds": done - timings[0]["engine_ready_at"]}


def thread_count(n: int) -> str:
    return f"{n} engine thread{'' if n == 1 else 's'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved cycles after warm-up (>= 5)")
    parser.add_argument("--size", default="full", choices=["full", "test"], help="toy world size [full]")
    args = parser.parse_args()

    from harness import bare_round, engine_threads, interleaved_rounds, spread, write_bare_job

    from limo_ray.config import load_config
    from limo_ray.curate.sampling import build_prompts
    from limo_ray.engine import engine_spec, init_ray
    from limo_ray.records import load_problems
    from limo_ray.toy.references import resolve_references

    config = resolve_references(
        load_config(
            "tiny", [f"toy.size={args.size}", f"curate.weak.rounds=[{ATTEMPTS}]", f"curate.weak.attempts={ATTEMPTS}"]
        )
    )
    pool = load_problems(list(config.curate.pool.sources)).problems
    problems = random.Random(0).sample(pool, min(args.problems, len(pool)))
    spec = engine_spec(config, config.curate.weak.model)
    sampling = config.curate.weak.sampling.model_dump()
    prompts = list(build_prompts(spec, problems).values())
    jobs = {
        capped: write_bare_job(spec, prompts, {"n": ATTEMPTS, **sampling}, capped=capped) for capped in (True, False)
    }
    init_ray(config.cluster, num_cpus=2)
    print(
        f"workload: {len(problems)} toy-pool problems x n={ATTEMPTS}, weak toy model ({spec.model}), "
        f"sampling {sampling}; the pipeline's engine actor computes on {engine_threads(spec)} thread(s)"
    )
    runs = iter(range(10_000))

    def pipeline() -> dict[str, float]:
        return pipeline_round(config, problems, jobs[True].parent / f"run-{next(runs)}")

    sides = {
        "bare capped": lambda: bare_round(jobs[True]),
        "bare uncapped": lambda: bare_round(jobs[False]),
        "pipeline": pipeline,
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    threads: dict[str, int] = {}
    for i, cycle in enumerate(interleaved_rounds(sides, args.pairs)):
        for name, result in cycle.items():
            rates[name].append(result["tokens"] / result["seconds"])
            threads[name] = int(result.get("threads", engine_threads(spec)))
        print(
            f"pair {i + 1}: "
            + "  ".join(
                f"{name} {rates[name][-1]:6.0f} tok/s ({r['tokens']:.0f} tokens, {r['seconds']:.1f}s)"
                for name, r in cycle.items()
            ),
            flush=True,
        )
    like = [p / b for p, b in zip(rates["pipeline"], rates["bare capped"], strict=True)]
    unlike = [p / b for p, b in zip(rates["pipeline"], rates["bare uncapped"], strict=True)]
    print(
        "tokens/s, median (min..max): "
        + ", ".join(f"{name} ({thread_count(threads[name])}) {spread(r)}" for name, r in rates.items())
    )
    print(f"pipeline/bare-engine uncapped ({thread_count(threads['bare uncapped'])}) ratio: {spread(unlike, 3)}")
    print(
        f"pipeline/bare-engine capped ({thread_count(threads['bare capped'])}, like with like) ratio: {spread(like, 3)}"
    )
    print(f"pipeline/bare-engine tokens-per-second ratio: {statistics.median(like):.3f} (same engine threads)")


if __name__ == "__main__":
    main()
