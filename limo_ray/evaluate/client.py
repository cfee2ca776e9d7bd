"""An OpenAI-compatible chat client for evaluation: bounded retries with backoff, and errors that say which kind.

Talks to a URL only (the evaluator never imports the server). A busy server (503 + `Retry-After`, 429), a
timeout or a dropped connection is retried with exponential backoff and jitter, waiting at least what the
server asked; a 4xx is the request's own fault and is not retried: the caller records it as the answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    completion_tokens: int | None = None


class RequestFailed(Exception):
    """A request that did not produce completions: `retryable` False means the server refused it for good."""

    def __init__(self, message: str, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass
class RetryPolicy:
    retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full-jitter backoff for `attempt` (0-based), never shorter than the server's `Retry-After`."""
        backoff = min(self.max_delay_s, self.base_delay_s * 2**attempt) * (0.5 + rng.random() / 2)
        return max(backoff, retry_after or 0.0)


class ChatClient:
    """`chat()` against `{base_url}/v1/chat/completions`; use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 3600.0,
        concurrency: int = 64,
        retry: RetryPolicy | None = None,
        seed: int = 0,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(30.0, timeout_s)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.retry = retry or RetryPolicy()
        self.rng = random.Random(seed)
        self.counts = {"requests": 0, "retries": 0, "busy": 0}

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def models(self) -> list[str]:
        response = await self._send("GET", "/v1/models", None)
        return [m["id"] for m in response.get("data", [])]

    async def chat(
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        **extra: Any,
    ) -> list[Completion]:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "n": n,
            "temperature": temperature,
            "top_p": top_p,
            **extra,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        data = await self._send("POST", "/v1/chat/completions", body)
        choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise RequestFailed(f"asked for {n} completions, got {len(choices)}", 200, retryable=True)
        usage = data.get("usage") or {}
        # Usage is per request; per completion it is only known when there is one.
        per_choice = usage.get("completion_tokens") if n == 1 else None
        return [
            Completion(
                text=(c.get("message") or {}).get("content") or "",
                finish_reason=c.get("finish_reason"),
                completion_tokens=per_choice,
            )
            for c in choices
        ]

    async def _send(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        last: RequestFailed | None = None
        for attempt in range(self.retry.retries + 1):
            if attempt:
                self.counts["retries"] += 1
            self.counts["requests"] += 1
            retry_after = None
            try:
                response = await self.http.request(method, path, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = RequestFailed(f"{type(exc).__name__}: {exc}".strip(": "), None, retryable=True)
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        last = RequestFailed("the server answered 200 with a body that is not JSON", 200, True)
                else:
                    message = _error_message(response)
                    retryable = response.status_code in RETRY_STATUSES
                    last = RequestFailed(f"HTTP {response.status_code}: {message}", response.status_code, retryable)
                    if response.status_code in (429, 503):
                        self.counts["busy"] += 1
                    retry_after = _retry_after(response)
            if not last.retryable or attempt == self.retry.retries:
                break
            await asyncio.sleep(self.retry.delay(attempt, retry_after, self.rng))
        assert last is not None
        raise last


def normalize_base_url(url: str) -> str:
    """`http://host:port`, `.../` or `.../v1` all mean the same server."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))[:300]
    return str(data)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
