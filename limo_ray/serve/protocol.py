"""The OpenAI wire format this server speaks: request models (validation), responses, stream chunks, errors.

Pure data and functions, no Ray and no vLLM, so every rule here is unit-tested without an engine. We speak a
deliberate subset of the OpenAI API (what evaluation and chat clients use: n, temperature, top_p, max_tokens,
stop, streaming, plus vLLM's `ignore_eos`); a field outside it is a 400 that names the field, rather than a
silently ignored setting that would make two evaluations differ without anyone noticing.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Fields some clients send by default that change nothing here; accepted and ignored.
_HARMLESS_FIELDS = ("user", "logit_bias", "parallel_tool_calls")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=128)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    # vLLM extras, sent by the openai client through `extra_body`.
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 16 or any(not s for s in stops):
            raise ValueError("stop: at most 16 non-empty strings")
        return stops

    @field_validator("logit_bias")
    @classmethod
    def _no_logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise ValueError("logit_bias is not supported by this server")
        return value

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]
    name: str | None = None

    def text(self) -> str:
        """The message text; content parts must all be text (this server hosts text-only models)."""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"content part of type {part.get('type')!r}: only text parts are supported")
            texts.append(part["text"])
        return "".join(texts)


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)

    def chat(self) -> list[dict[str, str]]:
        # "developer" is the OpenAI name newer clients use for the system role; chat templates know "system".
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Request):
    prompt: str | list[str]
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt: an empty list")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class RequestError(Exception):
    """A request the server refuses: an HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind or _ERROR_TYPES.get(status, "server_error")

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.kind)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    503: "service_unavailable",
}


def error_body(status: int, message: str, param: str | None = None, kind: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": kind or _ERROR_TYPES.get(status, "server_error"),
            "param": param,
            "code": status,
        }
    }


def parse_request(kind: Literal["chat", "completion"], raw: bytes) -> ChatCompletionRequest | CompletionRequest:
    """Validate a request body; any problem is a RequestError(400) whose message names the field."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = ChatCompletionRequest if kind == "chat" else CompletionRequest
    try:
        request = model.model_validate(data)
        if isinstance(request, ChatCompletionRequest):
            request.chat()  # content parts are checked here, so a bad part is a 400 too
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        if first["type"] == "extra_forbidden":
            message = f"unsupported field `{param}`: this server accepts {', '.join(_accepted_fields(model))}"
        else:
            shown = "; ".join(
                f"`{'.'.join(str(p) for p in e['loc']) or 'body'}`: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()[:5]
            )
            message = f"invalid request: {shown}"
        raise RequestError(400, message, param=param) from None
    except ValueError as exc:
        raise RequestError(400, f"invalid request: {exc}", param="messages") from None
    return request


def _accepted_fields(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if name not in _HARMLESS_FIELDS]


# ----------------------------------------------------------------------------------------------- responses


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_response(
    request_id: str, model: str, choices: list[tuple[int, str, str | None]], prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """`choices`: (index, text, finish_reason) per completion."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
            for index, text, finish_reason in choices
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_response(
    request_id: str, model: str, choices: list[tuple[int, str, str | None]], prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}
            for index, text, finish_reason in choices
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(
    request_id: str, model: str, created: int, index: int, delta: dict[str, str], finish_reason: str | None
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def completion_chunk(
    request_id: str, model: str, created: int, index: int, text: str, finish_reason: str | None
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}],
    }


def usage_chunk(request_id: str, model: str, created: int, kind: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event; `[DONE]` ends an OpenAI stream."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n"


SSE_DONE = sse("[DONE]")


def model_card(name: str, max_model_len: int, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "limo-ray", "max_model_len": max_model_len}
