"""Curation throughput: the weak-filter stage (generate + grade + store + ledger) vs bare vLLM, same requests.

Pinned workload: a seeded sample of toy-pool problems (full-size world), the weak toy model, the tiny preset's
weak sampling, every problem drawn k=4 times in one round (`n=4` per request) so both sides send exactly the
same requests: same chat-templated prompts (`build_prompts`), same sampling parameters, same engine settings.
(a) bare: one `vllm.LLM` in its own process, timed from engine ready to its last output;
(b) pipeline: `run_stage(WeakFilter)` in a local Ray, Ray Data engine actor, grading in the driver, each
    batch stored in the generation cache as it arrives, decisions + manifest + ledger written; timed from its
    engine reporting ready to the ledger on disk.
Engine start-up is excluded from both. One warm-up pair, then >= 5 interleaved pairs; tokens/s medians and,
last, the median ratio.

    .venv/bin/python bench/curate_throughput.py --pairs 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ATTEMPTS = 4


def bare_round(request_file: str) -> dict[str, float]:
    """In a child process: the same prompts and sampling through one bare engine."""
    from vllm import LLM, SamplingParams

    from limo_ray.engine import EngineSpec

    job = json.loads(Path(request_file).read_text())
    spec = EngineSpec(**job["spec"])
    os.environ.update(spec.env())
    llm = LLM(**spec.llm_kwargs())
    params = SamplingParams(n=ATTEMPTS, **job["sampling"])
    start = time.time()
    outputs = llm.generate(job["prompts"], params, use_tqdm=False)
    seconds = time.time() - start
    return {"tokens": sum(len(c.token_ids) for o in outputs for c in o.outputs), "seconds": seconds}


def pipeline_round(config: Any, problems: list[Any], run_dir: Path, resolve: Any) -> dict[str, float]:
    from limo_ray.curate.context import CurateContext
    from limo_ray.curate.filters import WeakFilter
    from limo_ray.curate.ledger import rebuild_ledger
    from limo_ray.curate.problem_table import write_problems
    from limo_ray.curate.stage import run_stage

    ctx = CurateContext(config=config, run_dir=run_dir, resolve_path=resolve, log=lambda _: None)
    write_problems(problems, ctx.stage_dir("ingest") / "problems.parquet")  # the ledger's row set
    outcome = run_stage(ctx, WeakFilter(), problems, "bench")
    rebuild_ledger(ctx.curate_dir, ["weak_filter"])
    done = time.time()
    timings = outcome.manifest.extra["timings"]
    return {"tokens": outcome.manifest.extra["tokens"], "seconds": done - timings[0]["engine_ready_at"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=1024)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--bare-child", nargs=2, metavar=("REQUESTS_JSON", "RESULT_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        request_file, result_file = args.bare_child
        Path(result_file).write_text(json.dumps(bare_round(request_file)))  # vLLM may still print on exit
        return

    import dataclasses

    from limo_ray.cli import _path_resolver
    from limo_ray.config import load_config
    from limo_ray.curate.sampling import build_prompts
    from limo_ray.engine import engine_spec, init_ray
    from limo_ray.records import load_problems

    config = load_config(
        "tiny", ["toy.size=full", f"curate.weak.rounds=[{ATTEMPTS}]", f"curate.weak.attempts={ATTEMPTS}"]
    )
    resolve = _path_resolver(config)
    pool = load_problems([resolve(s) for s in config.curate.pool.sources]).problems
    problems = random.Random(0).sample(pool, min(args.problems, len(pool)))
    spec = engine_spec(config, config.curate.weak.model, resolve_path=resolve)
    sampling = config.curate.weak.sampling.model_dump()
    work = Path(tempfile.mkdtemp(prefix="limo-curate-bench-"))
    request_file, result_file = work / "requests.json", work / "result.json"
    request_file.write_text(
        json.dumps(
            {
                "spec": dataclasses.asdict(spec),
                "sampling": sampling,
                "prompts": list(build_prompts(spec, problems).values()),
            }
        )
    )
    init_ray(config.cluster, num_cpus=2)
    print(
        f"workload: {len(problems)} toy-pool problems x n={ATTEMPTS}, weak toy model ({spec.model}), "
        f"sampling {sampling}"
    )

    def bare() -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, __file__, "--bare-child", str(request_file), str(result_file)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"the bare engine run failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return json.loads(result_file.read_text())

    runs = iter(range(10_000))

    def pipeline() -> dict[str, float]:
        return pipeline_round(config, problems, work / f"run-{next(runs)}", resolve)

    bare()
    pipeline()  # warm-up pair
    ratios, bare_rates, pipe_rates = [], [], []
    for i in range(args.pairs):
        a, b = bare(), pipeline()
        rate_a, rate_b = a["tokens"] / a["seconds"], b["tokens"] / b["seconds"]
        bare_rates.append(rate_a)
        pipe_rates.append(rate_b)
        ratios.append(rate_b / rate_a)
        print(
            f"pair {i + 1}: bare {rate_a:7.0f} tok/s ({a['tokens']:.0f} tokens, {a['seconds']:.1f}s)  pipeline "
            f"{rate_b:7.0f} tok/s ({b['tokens']:.0f} tokens, {b['seconds']:.1f}s)  ratio {rate_b / rate_a:.3f}"
        )
    print(f"median tokens/s: bare {statistics.median(bare_rates):.0f}, pipeline {statistics.median(pipe_rates):.0f}")
    print(f"pipeline/bare-engine tokens-per-second ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
