"""Long-tailed generation lengths: the curation engine path vs the ideal, one bare `vllm.LLM` given every request.

Why: reasoning chains are long-tailed (most a few thousand tokens, some at the 32k cap). An engine actor that
waits for each batch's longest sample before taking the next batch decodes a handful of sequences on hardware
sized for hundreds while that sample runs. This bench makes the tail exact and the same on both sides:
`ignore_eos` with each request's own `max_tokens` drawn from a lognormal (median CAP/8, a few percent at CAP).

Workload: 1,024 toy prompts x n=4, the weak toy model, bf16, eager, lengths from the fixed seed below.
(a) the ideal: a bare `vllm.LLM` in its own process, every request in one `generate` call, on the engine
    actor's thread count (harness.py); (b) the project's path: `EnginePool.generate` on batches of
    `request_batch_size` requests (1,024 sequences), exactly as the strong filter sends them, in a local Ray.
Engine start-up is excluded from both. One warm-up pair, then interleaved pairs; the last line is the median.

    .venv/bin/python bench/long_tail.py --pairs 5          # uses the toy world's weak model (test size by default)
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from engine_overhead import toy_prompts

PROMPTS = 1024
SAMPLES = 4
CAP = 384  # max new tokens: prompt (~90 tokens) + CAP fits the toy models' 512-token context
SAMPLING = {"n": SAMPLES, "ignore_eos": True, "temperature": 1.0, "max_tokens": CAP}
SEED = 20261202


def long_tailed_caps(count: int, cap: int = CAP, seed: int = SEED) -> list[int]:
    """Lognormal lengths, median cap/8, sigma such that ~4% reach the cap (P(Z > ln 8 / sigma) = 0.04)."""
    rng = random.Random(seed)
    median, sigma = cap / 8, 1.19
    return [max(1, min(cap, round(rng.lognormvariate(0.0, sigma) * median))) for _ in range(count)]


def pool_round(pool, prompts: list[str], caps: list[int]) -> dict[str, float]:
    from limo_ray.curate.sampling import request_batch_size

    requests = [{"prompt": p, "n": SAMPLES, "max_tokens": c} for p, c in zip(prompts, caps, strict=True)]
    size = request_batch_size(requests)
    batches = [
        {key: [r[key] for r in requests[i : i + size]] for key in requests[0]} for i in range(0, len(requests), size)
    ]
    start = time.time()
    tokens = 0
    for out in pool.generate(batches, SAMPLING):
        tokens += sum(sum(counts) for counts in out["completion_tokens"])
    return {"tokens": tokens, "seconds": time.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="HF model folder [the toy world's weak model]")
    parser.add_argument("--size", default="test", choices=["test", "full"], help="toy world size for the model")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    from harness import bare_round, interleaved_pairs, write_bare_job

    from limo_ray.config import ClusterConfig
    from limo_ray.engine import EnginePool, EngineSpec, init_ray

    model = args.model
    if model is None:
        from limo_ray.toy import build_toy_world

        model = str(build_toy_world(args.size).models["weak"])
    prompts = toy_prompts(model, PROMPTS)
    caps = long_tailed_caps(PROMPTS)
    spec = EngineSpec(name="weak", model=model, max_model_len=512, device="cpu")
    job = write_bare_job(spec, prompts, SAMPLING, per_prompt=[{"max_tokens": c} for c in caps])
    at_cap = sum(c == CAP for c in caps)
    print(
        f"workload: {PROMPTS} prompts x n={SAMPLES}, max_tokens lognormal: median {statistics.median(caps):.0f}, "
        f"mean {statistics.mean(caps):.0f}, {at_cap} ({at_cap / PROMPTS:.1%}) at the cap {CAP} (ignore_eos), "
        f"model {model}"
    )
    init_ray(ClusterConfig(), num_cpus=2)
    pool = EnginePool(spec)
    pool.ready_times()
    try:
        ratios = interleaved_pairs(
            lambda: bare_round(job), lambda: pool_round(pool, prompts, caps), args.pairs, ("ideal", "pipeline")
        )
    finally:
        pool.close()
    print(f"spread of the pair ratios: min {min(ratios):.3f}, max {max(ratios):.3f}")
    print(f"long-tail pipeline/ideal tokens-per-second ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
