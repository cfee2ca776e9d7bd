"""A tiny OpenAI-compatible test server (stdlib `http.server` on 127.0.0.1, in a thread) that answers by a rule.

Used as the oracle (answers each problem with its gold solution), as an LLM judge (YES/NO by a rule), and as
a server that counts what it was asked, so tests can check that the evaluator never asks for a finished sample
again. Not part of limo-ray: the evaluator must work against any endpoint, and this is one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (request body) -> n completion texts, or (status, message) to answer with an error.
Responder = Callable[[dict[str, Any]], "list[str] | tuple[int, str]"]


class FakeOpenAI:
    def __init__(
        self,
        responder: Responder,
        models: list[str] | None = None,
        delay_s: float = 0.0,
        busy_first: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.responder = responder
        self.models = models or ["fake"]
        self.delay_s = delay_s
        self.busy_first = busy_first  # answer the first N chat requests with 503 + Retry-After
        self.api_key = api_key
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every chat request body that got a 200
        self.statuses: Counter[int] = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def user_messages(self) -> Counter[str]:
        """How many times each user message was answered (200)."""
        with self.lock:
            return Counter(r["messages"][-1]["content"] for r in self.requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
                with fake.lock:
                    fake.statuses[status] += 1

            def _authorised(self) -> bool:
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._send(401, {"error": {"message": "invalid API key"}})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with fake.lock:
                    busy = fake.busy_first > 0
                    fake.busy_first -= 1 if busy else 0
                if busy:
                    self._send(503, {"error": {"message": "busy"}}, {"Retry-After": "0"})
                    return
                if body.get("model") not in fake.models:
                    self._send(404, {"error": {"message": f"model {body.get('model')!r} not served"}})
                    return
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                answer = fake.responder(body)
                if isinstance(answer, tuple):
                    self._send(answer[0], {"error": {"message": answer[1]}})
                    return
                with fake.lock:
                    fake.requests.append(body)
                choices = [
                    {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    for i, text in enumerate(answer)
                ]
                self._send(
                    200,
                    {
                        "id": "fake",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": choices,
                        "usage": {
                            "prompt_tokens": 1,
                            "completion_tokens": len(answer),
                            "total_tokens": 1 + len(answer),
                        },
                    },
                )

        return Handler
