"""Engine overhead: the project's Ray Data engine stage vs one bare `vllm.LLM`, same workload, same model.

Workload (issue 3): 1,024 toy prompts x n=4 x 64 new tokens (`ignore_eos`), the weak toy model, bf16, eager.
(a) a bare `vllm.LLM` in its own process; (b) `limo_ray.engine.generate` (the `VLLMStage` map_batches actor) in a
local Ray. Engine start-up is excluded from both: each is timed from engine ready to its last output ((b) takes
"ready" from the timestamp the actor records when its engine is up). One warm-up pair, then >= 5 interleaved
pairs (A B A B ...); prints the median tokens/s of each and, last, the median ratio.

    .venv/bin/python bench/engine_overhead.py --pairs 5             # builds/uses the full-size toy world
    .venv/bin/python bench/engine_overhead.py --model /path/to/hf_folder
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def bare_round(model: str, prompts_file: str) -> dict[str, float]:
    """Run in a child process: one bare engine, timed from ready to last output."""
    from vllm import LLM, SamplingParams

    from limo_ray.engine import EngineSpec

    spec = EngineSpec(name="weak", model=model, max_model_len=512, device="cpu")
    os.environ.update(spec.env())
    with open(prompts_file) as handle:
        prompts = json.load(handle)
    llm = LLM(**spec.llm_kwargs())
    start = time.time()
    outputs = llm.generate(prompts, SamplingParams(**SAMPLING), use_tqdm=False)
    seconds = time.time() - start
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    return {"tokens": tokens, "seconds": seconds}


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
    parser.add_argument(
        "--bare-child", nargs=3, metavar=("MODEL", "PROMPTS_JSON", "RESULT_JSON"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare_child:
        # The result goes to a file: vLLM's shutdown may still write to stdout after us.
        model_dir, prompts_file, result_file = args.bare_child
        with open(result_file, "w") as out:
            json.dump(bare_round(model_dir, prompts_file), out)
        return

    import tempfile

    from limo_ray.config import ClusterConfig
    from limo_ray.engine import init_ray

    model = args.model
    if model is None:
        from limo_ray.toy import build_toy_world

        model = str(build_toy_world("full").models["weak"])
    prompts = toy_prompts(model, PROMPTS)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(prompts, handle)
    init_ray(ClusterConfig(), num_cpus=2)
    print(f"workload: {PROMPTS} prompts x n={SAMPLES} x {NEW_TOKENS} new tokens (ignore_eos), model {model}")

    result_file = handle.name + ".result"

    def bare() -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, __file__, "--bare-child", model, handle.name, result_file], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise SystemExit(f"the bare engine run failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        with open(result_file) as result:
            return json.load(result)

    bare()
    ray_data_round(model, prompts)  # warm-up pair
    ratios, bare_rates, ray_rates = [], [], []
    for i in range(args.pairs):
        a = bare()
        b = ray_data_round(model, prompts)
        rate_a, rate_b = a["tokens"] / a["seconds"], b["tokens"] / b["seconds"]
        bare_rates.append(rate_a)
        ray_rates.append(rate_b)
        ratios.append(rate_b / rate_a)
        print(
            f"pair {i + 1}: bare {rate_a:8.0f} tok/s ({a['tokens']:.0f} tokens)  ray-data {rate_b:8.0f} tok/s "
            f"({b['tokens']:.0f} tokens)  ratio {rate_b / rate_a:.3f}"
        )
    print(f"median tokens/s: bare {statistics.median(bare_rates):.0f}, ray-data {statistics.median(ray_rates):.0f}")
    print(f"ray-data/bare-engine tokens-per-second ratio: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
