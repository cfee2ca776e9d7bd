"""One Serve app for the package's integration tests (Ray, Serve, vLLM CPU engine), started once for all of them.

The tiny random checkpoint as model `tiny`, behind an API key, with a deliberately small queue (4 in the replica,
4 queued) so that overload is reached with a few dozen requests. Tests that only read the wire format or the
app's options never ask for it, and so never start it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from limo_ray.serve import ServerHandle

KEY_ENV = "LIMO_TEST_SERVE_KEY"


@dataclass(frozen=True)
class TinyServer:
    handle: ServerHandle
    key: str
    model: str
    max_model_len: int

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def openai_base_url(self) -> str:
        return self.handle.openai_base_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="package")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyServer]:
    from limo_ray.config import load_config
    from limo_ray.serve import run_server
    from tests.fixtures import build_tiny_checkpoint

    key = "test-key-0123456789"
    checkpoint = build_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny")
    config = load_config(
        "tiny",
        [f"serve.api_key_env={KEY_ENV}", "serve.max_ongoing_requests=4", "serve.max_queued_requests=4"],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, key)
        handle = run_server(config, {"tiny": str(checkpoint)}, port=_free_port())
    print(f"\n    serve app ready in {handle.startup_s:.1f} s at {handle.url}")
    try:
        yield TinyServer(handle, key, "tiny", config.models[config.train.model].max_model_len)
    finally:
        handle.shutdown()
