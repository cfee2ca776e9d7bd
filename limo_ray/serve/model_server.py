"""`ModelServer`: one vLLM `AsyncLLM` per Serve replica, answering OpenAI requests through vLLM's own serving layer.

The requests, responses and stream events are vLLM's OpenAI server's (`OpenAIServingChat`,
`OpenAIServingCompletion`, set up by vLLM's `init_app_state`): every parameter its server takes, logprobs and
echo included, in its response shapes. What this class adds: the served name (the `model` clients send), a
per-request `seed` refused on the CPU engine (a per-request `SamplingParams(seed=...)` crashes vLLM's CPU engine
core, "CPU Generator does not use offset"; the engine itself is seeded), counters for `/stats`, and errors as
values (`Reply`) rather than exceptions, so they cross Ray and HTTP alike. vLLM batches every request in flight
itself, so there is no `@serve.batch`. Not `ray.serve.llm`: it puts an ingress deployment in front of each
engine (two hops), and measured 0.757 and 0.639 of a bare engine where this one-hop app measured 0.844 on the
same machine (bench/RESULTS.md, 2026-11-29).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import logging.handlers
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from limo_ray.engine.spec import EngineSpec
from limo_ray.errors import LimoError
from limo_ray.serve.protocol import Kind, RequestError, vllm_request

logger = logging.getLogger("ray.serve")

Reply = dict[str, Any]  # {"status": int, "body": dict}: errors travel as values, not exceptions across Ray


def async_engine_kwargs(spec: EngineSpec) -> dict[str, Any]:
    """`AsyncEngineArgs` keyword arguments for a spec; an engine kwarg vLLM does not know is an error."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    kwargs = spec.llm_kwargs()
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise LimoError(f"model {spec.name!r}: engine setting(s) {', '.join(unknown)} are not vLLM engine arguments")
    # Per-step stats logging costs CPU on a 2-core machine and says nothing a client needs.
    return {**kwargs, "disable_log_stats": True}


def spec_from_dict(data: Mapping[str, Any]) -> EngineSpec:
    return EngineSpec(**dict(data))


async def openai_serving_state(engine: Any, engine_args: Any, chat_template: str | None) -> Any:
    """vLLM's serving objects for `engine` (`.openai_serving_chat`, `.openai_serving_completion`), set up as its
    own OpenAI server sets them up: its frontend defaults, our engine arguments and chat template."""
    from starlette.datastructures import State
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.cli_args import FrontendArgs

    args = argparse.Namespace(**(vars(FrontendArgs()) | vars(engine_args)))
    args.chat_template = chat_template
    state = State()
    await init_app_state(engine, state, args, supported_tasks=await engine.get_supported_tasks())
    return state


@contextlib.contextmanager
def serve_log_file_kept() -> Iterator[None]:
    """Keep the replica's Serve log file through vLLM's start.

    vLLM configures logging with `dictConfig` when first imported, and `dictConfig` closes every handler in the
    process: the buffer that Serve writes the replica's log file through loses its file, and the replica's lines
    (an access line per request among them, the only ones when HAProxy is the ingress) would reach its stderr
    only. The buffer is given its file back."""
    buffers = [
        (handler, handler.target)
        for handler in logging.getLogger("ray.serve").handlers
        if isinstance(handler, logging.handlers.MemoryHandler)
    ]
    try:
        yield
    finally:
        for handler, target in buffers:
            if handler.target is None and target is not None:
                handler.setTarget(target)


class ModelServer:
    """Holds the engine. Called through a deployment handle by the router (several models), or in-process by
    `ModelIngress`, its HTTP-serving subclass (one model). Serve awaits the async constructor."""

    async def __init__(self, served_name: str, spec: Mapping[str, Any]) -> None:
        self.spec = spec_from_dict(spec)
        self.served_name = served_name
        os.environ.update(self.spec.env())  # read by the engine-core process vLLM spawns next
        started = time.monotonic()
        with serve_log_file_kept():
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM

            engine_args = AsyncEngineArgs(**async_engine_kwargs(self.spec), served_model_name=[served_name])
            self.engine = AsyncLLM.from_engine_args(engine_args)
            state = await openai_serving_state(self.engine, engine_args, self.spec.chat_template)
        self.serving = {"chat": state.openai_serving_chat, "completion": state.openai_serving_completion}
        self.ready_s = time.monotonic() - started
        self.counts: Counter[str] = Counter(requests=0, errors=0, prompt_tokens=0, completion_tokens=0)

    # --------------------------------------------------------------------------------------------- calls

    def stats(self) -> dict[str, Any]:
        """Requests and refusals seen; tokens of the whole (non-streamed) responses."""
        return {**self.counts, "engine_ready_s": round(self.ready_s, 2), "pid": os.getpid()}

    async def check_health(self) -> None:
        # Serve restarts a replica whose engine core died, instead of routing requests to it.
        await self.engine.check_health()

    async def generate(self, kind: Kind, body: dict[str, Any]) -> Reply:
        """A whole (non-streaming) response, or an error reply with its HTTP status."""
        started = await self._start(kind, body)
        if isinstance(started, dict):
            return started
        # `routing_fields` made the front and vLLM agree on `stream`, so this is a stream only by a bug upstream.
        await started.aclose()
        return self._refuse(RequestError(500, "a streamed answer was produced for a request sent as non-streaming"))

    async def stream(self, kind: Kind, body: dict[str, Any]) -> AsyncIterator[str]:
        """Server-sent events (vLLM's). The first item is a status line (JSON): `{"status": 200}` or an error reply.

        The front reads it before it answers, so a request refused here (prompt too long, a seed on CPU) is a
        plain 4xx rather than a 200 stream that carries an error.
        """
        started = await self._start(kind, body)
        if isinstance(started, dict):
            yield json.dumps(started)
            return
        yield json.dumps({"status": 200})
        async for event in started:
            yield event

    # --------------------------------------------------------------------------------------------- vLLM

    async def _start(self, kind: Kind, body: dict[str, Any]) -> Reply | Any:
        """Validate and hand the request to vLLM's serving layer: a Reply, or vLLM's stream of SSE strings."""
        from pydantic import BaseModel
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        self.counts["requests"] += 1
        try:
            request = vllm_request(kind, body)
            if request.seed is not None and self.spec.device == "cpu":
                raise RequestError(
                    400,
                    "per-request `seed` is not supported by the CPU engine (it is seeded once at start); "
                    "drop the field",
                    "seed",
                )
        except RequestError as exc:
            return self._refuse(exc)
        serving = self.serving[kind]
        create = serving.create_chat_completion if kind == "chat" else serving.create_completion
        try:
            result = await create(request)
        except Exception as exc:  # vLLM raises some refusals (e.g. a prompt past the context) instead of returning
            result = serving.create_error_response(exc)
            if result.error.code >= 500:
                logger.exception("limo-ray: %s request to %s failed", kind, self.served_name)
        if isinstance(result, ErrorResponse):
            self.counts["errors"] += 1
            return {"status": result.error.code, "body": result.model_dump()}
        if isinstance(result, BaseModel):
            usage = result.usage
            self.counts["prompt_tokens"] += usage.prompt_tokens
            self.counts["completion_tokens"] += usage.completion_tokens or 0
            return {"status": 200, "body": result.model_dump()}
        return result

    def _refuse(self, error: RequestError) -> Reply:
        self.counts["errors"] += 1
        return {"status": error.status, "body": error.body()}

    def __del__(self) -> None:
        # Stop the engine-core process with the replica, so a deleted app leaves no process holding a CPU.
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
