"""The Serve app for real (Ray, Serve, vLLM CPU engine) on a tiny random checkpoint, started once for the module.

One server with an API key and a deliberately small queue (4 in the engine, 4 queued): functional checks with
the official `openai` client, then overload (256 concurrent requests -> 503 + Retry-After, never a hang), then
the evaluator pointed at it (retries until every item is answered) and on MATH500/AIME24 (plumbing: a random
model scores ~0; the report must still carry CIs and a re-run must ask the server nothing).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from limo_ray.config import load_config
from limo_ray.errors import LimoError
from limo_ray.evaluate import SAMPLES_FILE, EvalRequest, run_eval
from limo_ray.serve import ServerHandle, run_server
from tests.fixtures import build_tiny_checkpoint, eval_config, mini_benchmark

pytestmark = pytest.mark.integration

KEY = "test-key-0123456789"
KEY_ENV = "LIMO_TEST_SERVE_KEY"
MODEL = "tiny"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    checkpoint = build_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny")
    config = load_config(
        "tiny",
        [f"serve.api_key_env={KEY_ENV}", "serve.max_ongoing_requests=4", "serve.max_queued_requests=4"],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, KEY)
        handle = run_server(config, {MODEL: str(checkpoint)}, port=_free_port())
    print(f"\n    serve app ready in {handle.startup_s:.1f} s at {handle.url}")
    try:
        yield handle
    finally:
        handle.shutdown()


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0, timeout=120)


def test_binds_localhost_and_lists_the_model(server: ServerHandle, client: openai.OpenAI) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_openai_client_gets_n4_chat_and_completions(client: openai.OpenAI) -> None:
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Reason step by step."}, {"role": "user", "content": "What is 2 + 3?"}],
        n=4,
        temperature=1.0,
        top_p=0.9,
        max_tokens=12,
    )
    assert sorted(c.index for c in chat.choices) == [0, 1, 2, 3]
    assert all(c.finish_reason in ("stop", "length") for c in chat.choices)
    assert chat.usage is not None and 0 < chat.usage.completion_tokens <= 48

    completion = client.completions.create(
        model=MODEL, prompt="What is 2 + 3?", n=4, max_tokens=8, temperature=1.0, extra_body={"ignore_eos": True}
    )
    assert len(completion.choices) == 4 and all(c.finish_reason == "length" for c in completion.choices)
    assert completion.usage is not None and completion.usage.completion_tokens == 32  # ignore_eos: exactly 4 x 8

    batch = client.completions.create(model=MODEL, prompt=["1 +", "2 +"], n=2, max_tokens=4, temperature=1.0)
    assert sorted(c.index for c in batch.choices) == [0, 1, 2, 3]  # prompt i, sample j -> index i * n + j

    stopped = client.completions.create(model=MODEL, prompt="x", max_tokens=40, stop=["e"], temperature=1.0)
    assert "e" not in stopped.choices[0].text


def test_streaming_chat_sends_deltas_for_every_choice_then_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        n=2,
        max_tokens=6,
        temperature=1.0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    text: Counter[int] = Counter()
    finished, usage = set(), None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text[choice.index] += len(choice.delta.content or "")
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1} and set(text) == {0, 1}
    assert usage is not None and usage.completion_tokens == 12


def test_malformed_requests_get_4xx_with_a_message(server: ServerHandle) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    url = f"{server.url}/v1/chat/completions"
    cases = [
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": "four"}, 400, "`n`"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "logprobs": True}, 400, "unsupported field"),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "not served here"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "seed": 1}, 400, "seed"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "seed": 1, "stream": True}, 400, "seed"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "word " * 2000}]}, 400, "context of 512"),
    ]
    for body, status, words in cases:
        response = httpx.post(url, json=body, headers=headers, timeout=60)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["error"]["message"], response.text
    bad_json = httpx.post(url, content=b"{oops", headers=headers, timeout=60)
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]


def test_api_key_is_required_when_set(server: ServerHandle) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    missing = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer nope"}, timeout=60)
    assert wrong.status_code == 401
    assert httpx.get(f"{server.url}/health", timeout=60).status_code == 200  # probes need no key
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0).models.list()


def test_overload_gets_503_with_retry_after_and_the_server_answers_afterwards(server: ServerHandle, report) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": 32,
        "temperature": 1.0,
        "ignore_eos": True,
    }

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, limits=limits, timeout=300) as http:
            return await asyncio.gather(
                *(http.post(f"{server.url}/v1/chat/completions", json=body) for _ in range(256))
            )

    responses = asyncio.run(flood())
    statuses = Counter(r.status_code for r in responses)
    report(f"256 concurrent requests, queue 4+4: {dict(statuses)}")
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] >= 1 and statuses[200] >= 1
    assert all(r.headers.get("retry-after", "").isdigit() for r in responses if r.status_code == 503)
    assert all(len(r.json()["choices"]) == 1 for r in responses if r.status_code == 200)
    after = httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
    )
    assert after.status_code == 200


def test_eval_client_against_the_small_queue_retries_until_every_item_is_answered(
    server: ServerHandle, tmp_path: Path, report
) -> None:
    registry = mini_benchmark(tmp_path, items=48, samples=2)
    config = eval_config(None, "eval.concurrency=64", "eval.retries=30", "eval.max_tokens=16", registry_file=registry)
    lines: list[str] = []
    result = run_eval(config, EvalRequest(server.url, ["mini"], MODEL, KEY), tmp_path, progress=lines.append)
    requests, retries, busy = map(int, re.search(r"(\d+) requests \((\d+) retries, (\d+) busy", lines[-1]).groups())  # type: ignore[union-attr]
    report(f"eval at concurrency 64 vs queue 4+4: {requests} item requests, {retries} retries, {busy} busy (503)")
    assert busy >= 1
    scores = result.score(MODEL, "mini")
    assert scores["n"] == 48 and scores["answered"] == 96


def test_a_checkpoint_that_cannot_load_fails_with_one_line_and_leaves_the_running_app_alone(
    server: ServerHandle, tmp_path: Path, client: openai.OpenAI, report
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "not-a-model"}')
    config = load_config("tiny", [f"serve.api_key_env={KEY_ENV}"])
    with pytest.raises(LimoError, match="did not start") as caught:
        run_server(config, {"broken": str(broken)}, app_name="broken", route_prefix="/broken")
    report(f"broken checkpoint: {caught.value}"[:240])
    assert "\n" not in str(caught.value) and "not-a-model" in str(caught.value)
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_eval_on_math500_and_aime24_writes_a_report_with_cis_and_a_rerun_asks_nothing(
    server: ServerHandle, shared_data: Path, tmp_path: Path, report
) -> None:
    config = eval_config(shared_data, "eval.concurrency=8", "eval.retries=30", "eval.max_tokens=8")
    result = run_eval(config, EvalRequest(server.url, ["aime24", "math500"], MODEL, KEY), tmp_path)
    aime, math500 = result.score(MODEL, "aime24"), result.score(MODEL, "math500")
    report(
        f"tiny random model: AIME24 {aime['pass@1']}% {aime['ci95']} ({aime['answered']} samples), "
        f"MATH500 {math500['pass@1']}% {math500['ci95']} ({math500['refused']} prompts over the 512-token context)"
    )
    assert aime["n"] == 30 and aime["samples"] == 4 and aime["answered"] == 120
    assert math500["n"] == 500 and math500["answered"] == 500
    assert aime["ci95"][0] <= aime["pass@1"] <= aime["ci95"][1]
    data = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert data["paper"]["aime24"]["LIMO"] == 57.1 and MODEL in data["checkpoints"]

    before = httpx.get(f"{server.url}/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=60).json()
    rows_before = (tmp_path / "eval" / SAMPLES_FILE).read_text().count("\n")
    run_eval(config, EvalRequest(server.url, ["aime24", "math500"], MODEL, KEY), tmp_path)
    after = httpx.get(f"{server.url}/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=60).json()
    assert after["models"][MODEL]["requests"] == before["models"][MODEL]["requests"]
    assert (tmp_path / "eval" / SAMPLES_FILE).read_text().count("\n") == rows_before
