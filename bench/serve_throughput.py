"""Serve throughput: the project's Ray Serve endpoint vs a bare vLLM `AsyncLLM` in one process, same engine settings.

Workload (issue 7): 64 concurrent chat requests (system prompt + a toy problem each), n=4, 64 new tokens
(`ignore_eos`), temperature 1.0; the weak toy model (or `--model FOLDER`), bf16, eager, the project's EngineSpec.
(a) HTTP through the Serve app (`limo_ray.serve.run_server`), with the official `openai` async client;
(b) the same requests straight into an `AsyncLLM` built from the same `EngineSpec`, in this process, prompts
templated and tokenised exactly as the server does. Both stay up for the whole run (an idle engine costs no CPU):
one warm-up round each, then >= 5 interleaved pairs (A B A B ...), each timed from the first request sent to the
last answer. Prints the median tokens/s of each and, last, the median of the per-pair ratios.

`--server ray-serve-llm` measures `ray.serve.llm` (`build_openai_app`) in place of our app, with the same CPU
settings (one {"CPU": 1} bundle, num_cpus=0 on replica and ingress): the figures behind the choice of our own
deployment (bench/RESULTS.md).

    .venv/bin/python bench/serve_throughput.py --pairs 7                 # the weak toy model (toy world built)
    .venv/bin/python bench/serve_throughput.py --model /path/to/hf_folder
    .venv/bin/python bench/serve_throughput.py --model /path/to/hf_folder --server ray-serve-llm
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

REQUESTS = 64
SAMPLES = 4
NEW_TOKENS = 64
TEMPERATURE = 1.0
MODEL_NAME = "bench"


def problems(count: int) -> list[str]:
    """Toy problems, as the toy benchmark asks them (a seed apart from the pool's and the benchmark's)."""
    from limo_ray.toy import generate_problems

    return [p.problem for p in generate_problems(count, seed=12345)]


def default_model() -> str:
    """The weak toy model (the toy world is built on first use: a few minutes)."""
    from limo_ray.toy import build_toy_world

    return str(build_toy_world().path("weak"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------------------------- (b) bare engine


class BareEngine:
    def __init__(self, spec: Any) -> None:
        import os

        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from limo_ray.serve.model_server import async_engine_kwargs

        os.environ.update(spec.env())
        started = time.monotonic()
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**async_engine_kwargs(spec)))
        self.ready_s = time.monotonic() - started
        self.tokenizer = self.engine.get_tokenizer()
        self.spec = spec

    async def one(self, messages: list[dict[str, str]]) -> int:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        params = SamplingParams(
            n=SAMPLES,
            temperature=TEMPERATURE,
            max_tokens=NEW_TOKENS,
            ignore_eos=True,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        tokens = 0
        async for output in self.engine.generate({"prompt_token_ids": ids}, params, uuid.uuid4().hex):
            tokens = sum(len(c.token_ids) for c in output.outputs)
        return tokens

    async def round(self, chats: list[list[dict[str, str]]]) -> float:
        start = time.perf_counter()
        tokens = sum(await asyncio.gather(*(self.one(m) for m in chats)))
        return tokens / (time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------- (a) Serve over HTTP


class ServeClient:
    def __init__(self, base_url: str) -> None:
        import httpx
        import openai

        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key="unused",
            max_retries=0,
            timeout=600,
            http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)),
        )

    async def one(self, messages: list[dict[str, str]]) -> int:
        response = await self.client.chat.completions.create(
            model=MODEL_NAME,
            messages=messages,  # type: ignore[arg-type]
            n=SAMPLES,
            temperature=TEMPERATURE,
            max_tokens=NEW_TOKENS,
            extra_body={"ignore_eos": True},
        )
        assert len(response.choices) == SAMPLES, f"expected {SAMPLES} choices, got {len(response.choices)}"
        assert response.usage is not None
        return response.usage.completion_tokens

    async def round(self, chats: list[list[dict[str, str]]]) -> float:
        start = time.perf_counter()
        tokens = sum(await asyncio.gather(*(self.one(m) for m in chats)))
        return tokens / (time.perf_counter() - start)


def start_limo(model: str, port: int) -> tuple[Any, float]:
    from limo_ray.config import load_config
    from limo_ray.serve import run_server

    config = load_config("tiny", ["serve.api_key_env=null"])
    handle = run_server(config, {MODEL_NAME: model}, host="127.0.0.1", port=port)
    return handle, handle.startup_s


def start_ray_serve_llm(spec: Any, port: int) -> tuple[Any, float]:
    from ray import serve
    from ray.serve.llm import LLMConfig, build_openai_app

    from limo_ray.config import ClusterConfig
    from limo_ray.engine import init_ray
    from limo_ray.serve.model_server import async_engine_kwargs

    started = time.monotonic()
    init_ray(ClusterConfig())
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    engine_kwargs = {k: v for k, v in async_engine_kwargs(spec).items() if k != "model"}
    llm_config = LLMConfig(
        model_loading_config={"model_id": MODEL_NAME, "model_source": spec.model},
        engine_kwargs=engine_kwargs,
        placement_group_config={"bundles": [{"CPU": 1}]},
        deployment_config={"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": 256},
        runtime_env={"env_vars": spec.env()},
        log_engine_metrics=False,  # as in our app: no per-step stats (they need disable_log_stats off)
    )
    app = build_openai_app(
        {"llm_configs": [llm_config], "ingress_deployment_config": {"ray_actor_options": {"num_cpus": 0}}}
    )
    serve.run(app, name="bench-serve-llm", route_prefix="/", blocking=False)

    class Stop:
        def shutdown(self) -> None:
            import ray

            serve.shutdown()
            ray.shutdown()

    return Stop(), time.monotonic() - started


async def run(args: argparse.Namespace) -> None:
    from limo_ray.config import LIMO_SYSTEM_PROMPT
    from limo_ray.engine import EngineSpec, chat_messages

    model = args.model or default_model()
    spec = EngineSpec(name=MODEL_NAME, model=str(Path(model).resolve()), max_model_len=512, device="cpu")
    chats = [chat_messages(p, LIMO_SYSTEM_PROMPT) for p in problems(REQUESTS)]
    port = args.port or free_port()

    server, serve_ready = start_limo(spec.model, port) if args.server == "limo" else start_ray_serve_llm(spec, port)
    print(f"serve app ({args.server}) ready in {serve_ready:.1f} s on 127.0.0.1:{port}", flush=True)
    try:
        bare = BareEngine(spec)
        print(f"bare AsyncLLM ready in {bare.ready_s:.1f} s", flush=True)
        client = ServeClient(f"http://127.0.0.1:{port}/v1")
        await client.round(chats)  # warm-up
        await bare.round(chats)
        serve_tps, bare_tps, ratios = [], [], []
        for pair in range(args.pairs):
            s = await client.round(chats)
            b = await bare.round(chats)
            serve_tps.append(s)
            bare_tps.append(b)
            ratios.append(s / b)
            print(f"pair {pair + 1}: serve {s:,.0f} tok/s, bare {b:,.0f} tok/s, ratio {s / b:.3f}", flush=True)
        bare.engine.shutdown()
        # vLLM's AsyncLLM.__del__ shuts down again at interpreter exit, when its module globals are already gone.
        bare.engine.shutdown = lambda timeout=None: None  # type: ignore[method-assign]
    finally:
        server.shutdown()
    print(
        f"workload: {REQUESTS} chat requests x n={SAMPLES} x {NEW_TOKENS} tokens; server {args.server}; "
        f"median serve {statistics.median(serve_tps):,.0f} tok/s, median bare {statistics.median(bare_tps):,.0f} tok/s"
    )
    print(f"serve/bare-engine tokens-per-second ratio: {statistics.median(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a local HF model folder [the weak toy model]")
    parser.add_argument("--pairs", type=int, default=7, help="measured pairs after one warm-up pair (>= 5)")
    parser.add_argument("--server", choices=["limo", "ray-serve-llm"], default="limo")
    parser.add_argument("--port", type=int, default=0, help="HTTP port for the Serve app [a free one]")
    args = parser.parse_args()
    if args.pairs < 5:
        parser.error("--pairs must be at least 5")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
