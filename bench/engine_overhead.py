"""Engine overhead: the project's Ray Data engine stage vs one bare `vllm.LLM`, same workload, same model.

Workload (issue 3): 1,024 toy prompts x n=4 x 64 new tokens (`ignore_eos`), the weak toy model, bf16, eager.
(a) a bare `vllm.LLM` in its own process; (b) `limo_ray.engine.generate` (the `EngineActor` map_batches actor) in a
local Ray. Engine start-up is excluded from both: each is timed from engine ready to its last output ((b) takes
"ready" from the timestamp the actor records when its engine is up). One warm-up pair, then >= 5 interleaved
pairs (A B A B ...); prints the median tokens/s of each and, last, the median ratio.

    .venv/bin/python bench/engine_overhead.py --pairs 5             # builds/uses the full-size toy world
    .venv/bin/python bench/engine_overhead.py --model /path/to/hf_folder
"""

from __future__ import annotations

import argparse
import statistics
import time

PROMPTS = 1024
SAMPLES = 4
NEW_TOKENS = 64
SAMPLING = {"n": SAMPLES, "max_tokens": NEW_TOKENS, "ignore_eos": True, "temperature": 1.0}


def toy_prompts(model: str, count: int) -> list[str]:
    """Chat-templated toy problems (from the toy world's benchmark + pool), as both sides receive them."""
    from transformers import AutoTokenizer

    from limo_ray.config import LIMO_SYSTEM_PROMPT
    from limo_ray.engine import chat_messages
    from limo_ray.toy import generate_problems

    tokenizer = AutoTokenizer.from_pretrained(model)
    problems = generate_problems(count, seed=12345)
    return [
        tokenizer.apply_chat_template(
            chat_messages(p.problem, LIMO_SYSTEM_PROMPT), tokenize=False, add_generation_prompt=True
        )
        for p in problems
    ]


def ray_data_round(model: str, prompts: list[str]) -> dict[str, float]:
    import ray

    from limo_ray.engine import EngineSpec, generate

    spec = EngineSpec(name="weak", model=model, max_model_len=512, device="cpu")
    ds = ray.data.from_items([{"prompt": p} for p in prompts], override_num_blocks=4)
    rows = generate(ds, spec, SAMPLING, concurrency=1, batch_size=256).materialize()
    done = time.time()
    ready = min(rows.unique("engine_ready_at"))
    tokens = sum(sum(r["completion_tokens"]) for r in rows.iter_rows())
    return {"tokens": tokens, "seconds": done - ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="HF model folder [the full-size toy world's weak model]")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    from harness import bare_round, interleaved_pairs, write_bare_job

    from limo_ray.config import ClusterConfig
    from limo_ray.engine import EngineSpec, init_ray

    model = args.model
    if model is None:
        from limo_ray.toy import build_toy_world

        model = str(build_toy_world("full").models["weak"])
    prompts = toy_prompts(model, PROMPTS)
    job = write_bare_job(EngineSpec(name="weak", model=model, max_model_len=512, device="cpu"), prompts, SAMPLING)
    init_ray(ClusterConfig(), num_cpus=2)
    print(f"workload: {PROMPTS} prompts x n={SAMPLES} x {NEW_TOKENS} new tokens (ignore_eos), model {model}")
    ratios = interleaved_pairs(
        lambda: bare_round(job), lambda: ray_data_round(model, prompts), args.pairs, ("bare", "ray-data")
    )
    print(f"ray-data/bare-engine tokens-per-second ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
