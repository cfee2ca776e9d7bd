"""The HTTP front of the Serve app: OpenAI routes, API key, validation, routing by `model`, and backpressure.

Two shapes share one front (`OpenAIFront`):
- one model (the usual `limo serve --checkpoint X`): `ModelIngress` is the model's own replica, engine and HTTP
  routes in one process, so a request makes one hop (proxy -> replica) instead of two; it measured faster on a
  2-core machine, where every hop competes with the engine for CPU (bench/serve_throughput.py);
- several models: `OpenAIIngress` (no engine, `num_cpus=0`) checks and routes by `model` to one `ModelServer`
  deployment per model, and turns a full model queue (`BackPressureError` from the deployment handle) into 503.

Either way the queue is bounded: past `max_queued_requests`, Serve's proxy (or the handle) rejects at once, answered
as 503 with `Retry-After`, so memory stays bounded however many clients push. The front checks the key, the body's
size and JSON, and routes by `model` (a model not served here is a 404 naming the served ones); the request itself
is validated and answered by vLLM's OpenAI serving layer beside the engine (`ModelServer`). The API key travels
as its SHA-256 digest (from `run_server`) or is read from the environment variable named in the args (a KubeRay
Secret); it is never logged, and the key itself never enters Serve's config.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from limo_ray.serve import protocol
from limo_ray.serve.model_server import ModelServer, Reply
from limo_ray.serve.protocol import Kind, RequestError

logger = logging.getLogger("ray.serve")

# A generous bound on a request body: a long chat is kilobytes; without one a client could make us buffer gigabytes.
MAX_BODY_BYTES = 8 * 1024 * 1024
_BUSY = (BackPressureError, DeploymentUnavailableError, RayActorError)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# Helpers come before the deployment classes: Serve serialises a class when it is decorated, so the names its
# methods use must exist by then.
async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(protocol.error_body(status, message, param), status_code=status, headers=dict(headers or {}))


class OpenAIFront:
    """What both ingress shapes do with an HTTP request; subclasses say how to reach the engine."""

    def _setup_front(
        self,
        cards: Mapping[str, dict[str, Any]],
        api_key_sha256: str | None,
        api_key_env: str | None,
        retry_after_s: int,
    ) -> None:
        self.cards = dict(cards)
        env_key = os.environ.get(api_key_env) if api_key_env else None
        self.key_digest = api_key_sha256 or (key_digest(env_key) if env_key else None)
        self.retry_after_s = retry_after_s
        self.status_counts: Counter[str] = Counter()
        logger.info("limo-ray: serving %s; API key %s", ", ".join(self.cards), "required" if self.key_digest else "off")

    # ------------------------------------------------------------------------------------------- engine access

    async def _generate(self, name: str, kind: Kind, body: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def _events(self, name: str, kind: Kind, body: dict[str, Any]) -> Any:
        """An async iterator of the model's stream events (first: the status line)."""
        raise NotImplementedError

    async def _engine_stats(self) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- requests

    def _models_response(self, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return self._count(denied)
        return JSONResponse({"object": "list", "data": list(self.cards.values())})

    async def _stats_response(self, request: Request) -> Response:
        """Status counts seen by this front replica, and one engine replica's counters per model."""
        if (denied := self._check_key(request)) is not None:
            return self._count(denied)
        return JSONResponse({"ingress": dict(self.status_counts), "models": await self._engine_stats()})

    async def _serve(self, kind: Kind, request: Request) -> Response:
        return self._count(await self._answer(kind, request))

    async def _answer(self, kind: Kind, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        try:
            body = protocol.read_json_object(await _read_body(request))
            model, stream = protocol.routing_fields(body)
            if model not in self.cards:
                raise RequestError(404, f"model {model!r} is not served here; served: {', '.join(self.cards)}", "model")
        except RequestError as exc:
            return _error(exc.status, exc.message, exc.param)
        try:
            if stream:
                return await self._stream(kind, model, body)
            reply = await self._generate(model, kind, body)
        except _BUSY as exc:
            return self._busy(exc)
        except Exception as exc:  # a bug or a dead engine: a JSON 500 the client can retry, and a log line
            logger.exception("limo-ray: %s request to %s failed", kind, model)
            return _error(500, f"the model server failed: {type(exc).__name__}")
        return JSONResponse(reply["body"], status_code=reply["status"])

    async def _stream(self, kind: Kind, model: str, body: dict[str, Any]) -> Response:
        events = self._events(model, kind, body)
        status = json.loads(await events.__anext__())
        if status["status"] != 200:
            await _close(events)
            return JSONResponse(status["body"], status_code=status["status"])

        async def forward() -> AsyncIterator[str]:
            async for event in events:
                yield event

        return StreamingResponse(forward(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def _busy(self, exc: Exception) -> Response:
        message = (
            "the server is at capacity: the model's request queue is full; retry after the given delay"
            if isinstance(exc, BackPressureError)
            else "the model is not available (starting, restarting or its replica died); retry after the given delay"
        )
        return _error(503, message, headers={"Retry-After": str(self.retry_after_s)})

    def _check_key(self, request: Request) -> Response | None:
        if self.key_digest is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "missing API key: send the header `Authorization: Bearer <key>`")
        if not hmac.compare_digest(key_digest(token.strip()), self.key_digest):
            return _error(401, "invalid API key")
        return None

    def _count(self, response: Response) -> Response:
        self.status_counts[str(response.status_code)] += 1
        return response


async def _close(events: Any) -> None:
    if hasattr(events, "cancel"):  # a Serve streaming response
        events.cancel()
    elif hasattr(events, "aclose"):  # a local async generator
        await events.aclose()


# ----------------------------------------------------------------------------------------------- one model

model_app = FastAPI(title="limo-ray", docs_url=None, redoc_url=None, openapi_url=None)


@serve.ingress(model_app)
class ModelIngress(OpenAIFront, ModelServer):
    """One model's replica: its engine and its HTTP routes in one process (one hop per request)."""

    async def __init__(
        self,
        served_name: str,
        spec: Mapping[str, Any],
        card: dict[str, Any],
        api_key_sha256: str | None = None,
        api_key_env: str | None = None,
        retry_after_s: int = 1,
    ) -> None:
        await ModelServer.__init__(self, served_name, spec)
        self._setup_front({served_name: card}, api_key_sha256, api_key_env, retry_after_s)

    async def _generate(self, name: str, kind: Kind, body: dict[str, Any]) -> Reply:
        return await self.generate(kind, body)

    def _events(self, name: str, kind: Kind, body: dict[str, Any]) -> Any:
        return self.stream(kind, body)

    async def _engine_stats(self) -> dict[str, Any]:
        return {self.served_name: self.stats()}

    @model_app.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @model_app.get("/v1/models")
    async def list_models(self, request: Request) -> Response:
        return self._models_response(request)

    @model_app.get("/stats")
    async def stats_route(self, request: Request) -> Response:
        return await self._stats_response(request)

    @model_app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._serve("chat", request)

    @model_app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._serve("completion", request)


# ----------------------------------------------------------------------------------------------- several models

router_app = FastAPI(title="limo-ray", docs_url=None, redoc_url=None, openapi_url=None)


@serve.deployment(name="OpenAIIngress")
@serve.ingress(router_app)
class OpenAIIngress(OpenAIFront):
    """Routes by `model` to one `ModelServer` deployment per model; holds no engine."""

    def __init__(
        self,
        models: Mapping[str, DeploymentHandle],
        cards: Mapping[str, dict[str, Any]],
        api_key_sha256: str | None = None,
        api_key_env: str | None = None,
        retry_after_s: int = 1,
    ) -> None:
        self.models = dict(models)
        self._setup_front(cards, api_key_sha256, api_key_env, retry_after_s)

    async def _generate(self, name: str, kind: Kind, body: dict[str, Any]) -> Reply:
        return await self.models[name].generate.remote(kind, body)

    def _events(self, name: str, kind: Kind, body: dict[str, Any]) -> Any:
        return self.models[name].options(stream=True).stream.remote(kind, body)

    async def _engine_stats(self) -> dict[str, Any]:
        return {name: await handle.stats.remote() for name, handle in self.models.items()}

    @router_app.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @router_app.get("/v1/models")
    async def list_models(self, request: Request) -> Response:
        return self._models_response(request)

    @router_app.get("/stats")
    async def stats_route(self, request: Request) -> Response:
        return await self._stats_response(request)

    @router_app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._serve("chat", request)

    @router_app.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._serve("completion", request)
