"""Curation throughput: the weak-filter stage (generate + grade + store + ledger) vs bare vLLM, same requests.

Pinned workload: a seeded sample of toy-pool problems (full-size world), the weak toy model, the tiny preset's
weak sampling, every problem drawn k=4 times in one round (`n=4` per request) so both sides send exactly the
same requests: same chat-templated prompts (`build_prompts`), same sampling parameters, same engine settings.
(a) bare: one `vllm.LLM` in its own process, timed from engine ready to its last output;
(b) pipeline: `run_stage(WeakFilter)` in a local Ray, the run's engine actor, grading in the driver, each
    batch stored in the generation cache as it arrives, decisions + manifest + ledger written; timed from its
    engine reporting ready to the ledger on disk.
Engine start-up is excluded from both. One warm-up pair, then >= 5 interleaved pairs; tokens/s medians and,
last, the median ratio.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--size", default="full", choices=["full", "test"], help="toy world size [full]")
    args = parser.parse_args()

    from harness import bare_round, interleaved_pairs, write_bare_job

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
    job = write_bare_job(spec, list(build_prompts(spec, problems).values()), {"n": ATTEMPTS, **sampling})
    init_ray(config.cluster, num_cpus=2)
    print(
        f"workload: {len(problems)} toy-pool problems x n={ATTEMPTS}, weak toy model ({spec.model}), "
        f"sampling {sampling}"
    )
    work = job.parent
    runs = iter(range(10_000))

    def pipeline() -> dict[str, float]:
        return pipeline_round(config, problems, work / f"run-{next(runs)}")

    ratios = interleaved_pairs(lambda: bare_round(job), pipeline, args.pairs, ("bare", "pipeline"))
    print(f"pipeline/bare-engine tokens-per-second ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
