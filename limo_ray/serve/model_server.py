"""`ModelServer`: one vLLM `AsyncLLM` per Serve replica, answering OpenAI-shaped requests for one model.

Our own deployment around vLLM's async engine rather than `ray.serve.llm`: it was ready sooner and ran faster
here (figures in bench/RESULTS.md), and it is small enough to read in one sitting. vLLM batches every request
in flight itself, so there is no `@serve.batch`; `n` completions of one request share the prompt's prefill.

Non-streaming requests use `RequestOutputKind.FINAL_ONLY`: with the default kind, the last output of an `n > 1`
request can miss completions (STACK_NOTES). Per-request seeds crash the CPU engine, so a `seed` is refused there
with a 400; the engine itself is seeded from the spec.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from limo_ray.engine.spec import EngineSpec
from limo_ray.errors import LimoError
from limo_ray.serve import protocol
from limo_ray.serve.protocol import ChatCompletionRequest, CompletionRequest, RequestError

Kind = Literal["chat", "completion"]
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


class ModelServer:
    """Holds the engine. Called through a deployment handle by the router (several models), or in-process by
    `ModelIngress`, its HTTP-serving subclass (one model)."""

    def __init__(self, served_name: str, spec: Mapping[str, Any]) -> None:
        self.spec = spec_from_dict(spec)
        self.served_name = served_name
        os.environ.update(self.spec.env())  # read by the engine-core process vLLM spawns next
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        started = time.monotonic()
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**async_engine_kwargs(self.spec)))
        self.tokenizer = self.engine.get_tokenizer()
        self.max_model_len = self.spec.max_model_len
        self.ready_s = time.monotonic() - started
        self.created = int(time.time())
        self.counts = {"requests": 0, "completion_tokens": 0, "prompt_tokens": 0, "errors": 0}

    # --------------------------------------------------------------------------------------------- calls

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "engine_ready_s": round(self.ready_s, 2), "pid": os.getpid()}

    async def check_health(self) -> None:
        # Serve restarts a replica whose engine core died, instead of routing requests to it.
        await self.engine.check_health()

    async def generate(self, kind: Kind, request: ChatCompletionRequest | CompletionRequest) -> Reply:
        """A whole (non-streaming) response, or an error reply with its HTTP status."""
        self.counts["requests"] += 1
        try:
            prompts = self._prompts(kind, request)
            params = self._sampling(request, prompts, stream=False)
            request_id = protocol.new_id("chatcmpl" if kind == "chat" else "cmpl")
            finals = await asyncio.gather(
                *(
                    self._final(ids, p, f"{request_id}-{i}")
                    for i, (ids, p) in enumerate(zip(prompts, params, strict=True))
                )
            )
        except RequestError as exc:
            self.counts["errors"] += 1
            return {"status": exc.status, "body": exc.body()}
        choices: list[tuple[int, str, str | None]] = []
        completion_tokens = 0
        for prompt_index, output in enumerate(finals):
            for completion in sorted(output.outputs, key=lambda c: c.index):
                choices.append((prompt_index * request.n + completion.index, completion.text, completion.finish_reason))
                completion_tokens += len(completion.token_ids)
        prompt_tokens = sum(len(ids) for ids in prompts)
        self.counts["prompt_tokens"] += prompt_tokens
        self.counts["completion_tokens"] += completion_tokens
        build = protocol.chat_response if kind == "chat" else protocol.completion_response
        return {
            "status": 200,
            "body": build(request_id, self.served_name, choices, prompt_tokens, completion_tokens),
        }

    async def stream(self, kind: Kind, request: ChatCompletionRequest | CompletionRequest) -> AsyncIterator[str]:
        """Server-sent events. The first item is a status line (JSON): `{"status": 200}` or an error reply.

        The ingress reads it before it answers, so a request refused here (prompt too long, a seed on CPU) is a
        plain 4xx rather than a 200 stream that carries an error.
        """
        self.counts["requests"] += 1
        try:
            prompts = self._prompts(kind, request)
            params = self._sampling(request, prompts, stream=True)
        except RequestError as exc:
            self.counts["errors"] += 1
            yield json.dumps({"status": exc.status, "body": exc.body()})
            return
        yield json.dumps({"status": 200})
        request_id = protocol.new_id("chatcmpl" if kind == "chat" else "cmpl")
        created = int(time.time())
        name = self.served_name
        if kind == "chat":
            for index in range(len(prompts) * request.n):
                yield protocol.sse(protocol.chat_chunk(request_id, name, created, index, {"role": "assistant"}, None))
        completion_tokens = 0
        streams = [
            self._deltas(ids, p, f"{request_id}-{i}") for i, (ids, p) in enumerate(zip(prompts, params, strict=True))
        ]
        try:
            async for prompt_index, completion in _merge(streams):
                index = prompt_index * request.n + completion.index
                completion_tokens += len(completion.token_ids)
                if not completion.text and completion.finish_reason is None:
                    continue
                if kind == "chat":
                    delta = {"content": completion.text} if completion.text else {}
                    chunk = protocol.chat_chunk(request_id, name, created, index, delta, completion.finish_reason)
                else:
                    chunk = protocol.completion_chunk(
                        request_id, name, created, index, completion.text, completion.finish_reason
                    )
                yield protocol.sse(chunk)
        except Exception as exc:  # the response has started: the error can only travel as an event
            self.counts["errors"] += 1
            yield protocol.sse(protocol.error_body(500, f"generation failed: {type(exc).__name__}: {exc}"))
            return
        prompt_tokens = sum(len(ids) for ids in prompts)
        self.counts["prompt_tokens"] += prompt_tokens
        self.counts["completion_tokens"] += completion_tokens
        if request.stream_options is not None and request.stream_options.include_usage:
            yield protocol.sse(protocol.usage_chunk(request_id, name, created, kind, prompt_tokens, completion_tokens))
        yield protocol.SSE_DONE

    # --------------------------------------------------------------------------------------------- engine

    async def _final(self, ids: list[int], params: Any, request_id: str) -> Any:
        final = None
        async for output in self._engine_generate(ids, params, request_id):
            final = output
        return final

    async def _deltas(self, ids: list[int], params: Any, request_id: str) -> AsyncIterator[Any]:
        async for output in self._engine_generate(ids, params, request_id):
            for completion in output.outputs:
                yield completion

    async def _engine_generate(self, ids: list[int], params: Any, request_id: str) -> AsyncIterator[Any]:
        from vllm.exceptions import VLLMClientError

        try:
            async for output in self.engine.generate({"prompt_token_ids": ids}, params, request_id):
                yield output
        except VLLMClientError as exc:
            raise RequestError(400, f"the engine refused the request: {exc}") from None

    # --------------------------------------------------------------------------------------------- prompts

    def _prompts(self, kind: Kind, request: ChatCompletionRequest | CompletionRequest) -> list[list[int]]:
        if kind == "chat":
            assert isinstance(request, ChatCompletionRequest)
            try:
                text = self.tokenizer.apply_chat_template(
                    request.chat(), tokenize=False, add_generation_prompt=True, chat_template=self.spec.chat_template
                )
            except Exception as exc:  # a template that rejects the conversation (e.g. roles out of order)
                raise RequestError(400, f"the chat template rejected the messages: {exc}", "messages") from None
            prompts = [self.tokenizer.encode(text, add_special_tokens=False)]
        else:
            assert isinstance(request, CompletionRequest)
            prompts = [self.tokenizer.encode(p) for p in request.prompts()]
        for ids in prompts:
            if len(ids) >= self.max_model_len:
                raise RequestError(
                    400,
                    f"the prompt is {len(ids)} tokens; model {self.served_name!r} has a context of "
                    f"{self.max_model_len} tokens, which leaves no room to generate",
                    "messages" if kind == "chat" else "prompt",
                )
        return prompts

    def _sampling(
        self, request: ChatCompletionRequest | CompletionRequest, prompts: list[list[int]], stream: bool
    ) -> list[Any]:
        """One SamplingParams per prompt: `max_tokens` is capped to the context the prompt leaves."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if request.seed is not None and self.spec.device == "cpu":
            raise RequestError(
                400,
                "per-request `seed` is not supported by the CPU engine (it is seeded once at start); drop the field",
                "seed",
            )
        out = []
        for ids in prompts:
            room = self.max_model_len - len(ids)
            limit = request.token_limit()
            out.append(
                SamplingParams(
                    n=request.n,
                    temperature=request.temperature,
                    top_p=request.top_p,
                    max_tokens=min(limit, room) if limit is not None else room,
                    min_tokens=min(request.min_tokens, room),
                    stop=request.stop,
                    ignore_eos=request.ignore_eos,
                    presence_penalty=request.presence_penalty,
                    frequency_penalty=request.frequency_penalty,
                    seed=request.seed,
                    output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
                )
            )
        return out

    def __del__(self) -> None:
        # Stop the engine-core process with the replica, so a deleted app leaves no process holding a CPU.
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()


async def _merge(streams: list[AsyncIterator[Any]]) -> AsyncIterator[tuple[int, Any]]:
    """Interleave several async iterators as items arrive, tagging each item with its stream's index."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield 0, item
        return
    queue: asyncio.Queue[tuple[int, Any, BaseException | None, bool]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[Any]) -> None:
        try:
            async for item in stream:
                await queue.put((index, item, None, False))
        except BaseException as exc:  # re-raised in the consumer
            await queue.put((index, None, exc, True))
            return
        await queue.put((index, None, None, True))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item, error, done = await queue.get()
            if error is not None:
                raise error
            if done:
                remaining -= 1
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
