"""What this server adds to vLLM's OpenAI wire format: routing fields, errors that name the field, model cards.

The requests and responses themselves are vLLM's (`vllm.entrypoints.openai`: every field and response shape
its OpenAI server has, logprobs and echo included, with no copy of the protocol here to fall behind vLLM's).
This module reads only what the front needs before an engine is involved (a JSON object, its `model`, whether
it streams), so the router that serves several models never imports vLLM; `vllm_request` validates a body into
vLLM's request model where the engine lives. Unit-tested without an engine.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import ValidationError

Kind = Literal["chat", "completion"]


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


def read_json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, "the request body must be a JSON object")
    return data


def routing_fields(body: dict[str, Any]) -> tuple[str, bool]:
    """The `model` a request is for and whether it streams: what the front routes on."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "invalid request: `model`: a non-empty string is required", "model")
    stream = body.get("stream")
    # Strictly a JSON boolean (or null): the front and vLLM must agree on whether the answer is a stream.
    if stream is not None and not isinstance(stream, bool):
        raise RequestError(400, "invalid request: `stream`: must be true or false", "stream")
    return model, bool(stream)


def vllm_request(kind: Kind, body: dict[str, Any]) -> Any:
    """`body` validated into vLLM's ChatCompletionRequest / CompletionRequest; a problem is a 400 naming the field."""
    if kind == "chat":
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest as Model
    else:
        from vllm.entrypoints.openai.completion.protocol import CompletionRequest as Model
    try:
        return Model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        shown = "; ".join(
            f"`{'.'.join(str(p) for p in e['loc']) or 'body'}`: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()[:5]
        )
        raise RequestError(400, f"invalid request: {shown}", ".".join(str(p) for p in first["loc"]) or None) from None
    except Exception as exc:  # vLLM's own validators raise its errors (e.g. `top_logprobs` without `logprobs`)
        from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

        error = create_error_response(exc).error
        raise RequestError(error.code, f"invalid request: {error.message}", error.param, error.type) from None


def model_card(name: str, max_model_len: int, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "limo-ray", "max_model_len": max_model_len}
