"""The Serve app's own surface beyond the OpenAI SDK (tests/serve/test_openai_clients.py), on the package's app.

Raw HTTP for what an SDK never sends (bad JSON, a non-boolean `stream`, no key at all), a per-request seed refused
on the CPU engine, the probes, then the evaluator pointed at the app: against its small queue (retries until every
item is answered) and on MATH500/AIME24 (plumbing: a random model scores ~0; the report must still carry CIs and a
re-run must ask the server nothing), and a broken checkpoint deployed beside it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import openai
import pytest

from limo_ray.config import load_config
from limo_ray.errors import LimoError
from limo_ray.evaluate import SAMPLES_FILE, EvalRequest, run_eval
from limo_ray.serve import run_server
from tests.fixtures import eval_config, mini_benchmark

if TYPE_CHECKING:
    from tests.serve.conftest import TinyServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tiny_server: TinyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=tiny_server.openai_base_url, api_key=tiny_server.key, max_retries=0, timeout=120)


def test_binds_localhost_and_lists_the_model(tiny_server: TinyServer, client: openai.OpenAI) -> None:
    assert tiny_server.url.startswith("http://127.0.0.1:")
    (card,) = client.models.list().data
    assert card.id == tiny_server.model and (card.model_extra or {})["max_model_len"] == tiny_server.max_model_len


def test_the_default_ingress_is_haproxy_listening_on_the_apps_port(tiny_server: TinyServer) -> None:
    """cluster.serve_ingress=haproxy (the default) reaches the Serve that run_server started: the app's port is
    HAProxy's, not the Python proxy actor's, and the replica answers HTTP on a port of its own behind it."""
    import psutil

    port = int(tiny_server.url.rsplit(":", 1)[1])
    listeners = {
        c.laddr.port: c.pid for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.pid
    }
    assert port in listeners, f"nothing listens on {port}"
    assert psutil.Process(listeners[port]).name() == "haproxy"
    replicas = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "ServeReplica:limo:model-tiny" in " ".join(p.info["cmdline"] or [])
    ]
    assert replicas and any(listeners.get(q) == replicas[0].pid for q in range(30000, 31000))


def test_malformed_requests_get_4xx_with_a_message(tiny_server: TinyServer) -> None:
    headers = {"Authorization": f"Bearer {tiny_server.key}"}
    url = f"{tiny_server.url}/v1/chat/completions"
    model, hello = tiny_server.model, [{"role": "user", "content": "x"}]
    cases = [
        ({"messages": hello}, 400, "`model`"),
        ({"model": model, "messages": hello, "n": "four"}, 400, "`n`"),
        ({"model": model, "messages": hello, "stream": "yes"}, 400, "`stream`"),
        ({"model": model, "messages": hello, "top_logprobs": 2}, 400, "`logprobs` must be set"),
        ({"model": "nope", "messages": hello}, 404, "not served here"),
        ({"model": model, "messages": hello, "seed": 1}, 400, "seed"),
        ({"model": model, "messages": hello, "seed": 1, "stream": True}, 400, "seed"),
    ]
    for body, status, words in cases:
        response = httpx.post(url, json=body, headers=headers, timeout=60)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["error"]["message"], response.text
    bad_json = httpx.post(url, content=b"{oops", headers=headers, timeout=60)
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    not_object = httpx.post(url, json=[1, 2], headers=headers, timeout=60)
    assert not_object.status_code == 400 and "JSON object" in not_object.json()["error"]["message"]


def test_api_key_is_required_when_set(tiny_server: TinyServer) -> None:
    body = {"model": tiny_server.model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    missing = httpx.post(f"{tiny_server.url}/v1/chat/completions", json=body, timeout=60)
    assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{tiny_server.url}/v1/models", headers={"Authorization": "Bearer nope"}, timeout=60)
    assert wrong.status_code == 401
    assert httpx.get(f"{tiny_server.url}/health", timeout=60).status_code == 200  # probes need no key
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="nope", max_retries=0).models.list()


def test_eval_client_against_the_small_queue_retries_until_every_item_is_answered(
    tiny_server: TinyServer, tmp_path: Path, report
) -> None:
    registry = mini_benchmark(tmp_path, items=48, samples=2)
    config = eval_config(None, "eval.concurrency=64", "eval.retries=30", "eval.max_tokens=16", registry_file=registry)
    lines: list[str] = []
    result = run_eval(
        config,
        EvalRequest(tiny_server.url, ["mini"], tiny_server.model, tiny_server.key),
        tmp_path,
        progress=lines.append,
    )
    requests, retries, busy = map(int, re.search(r"(\d+) requests \((\d+) retries, (\d+) busy", lines[-1]).groups())  # type: ignore[union-attr]
    report(f"eval at concurrency 64 vs queue 4+4: {requests} item requests, {retries} retries, {busy} busy (503)")
    assert busy >= 1
    scores = result.score(tiny_server.model, "mini")
    assert scores["n"] == 48 and scores["answered"] == 96


def test_a_checkpoint_that_cannot_load_fails_with_one_line_and_leaves_the_running_app_alone(
    tiny_server: TinyServer, tmp_path: Path, client: openai.OpenAI, report
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "not-a-model"}')
    config = load_config("tiny", ["serve.api_key_env=null"])
    with pytest.raises(LimoError, match="did not start") as caught:
        run_server(config, {"broken": str(broken)}, app_name="broken", route_prefix="/broken")
    report(f"broken checkpoint: {caught.value}"[:240])
    assert "\n" not in str(caught.value) and "not-a-model" in str(caught.value)
    assert [m.id for m in client.models.list().data] == [tiny_server.model]


def test_eval_on_math500_and_aime24_writes_a_report_with_cis_and_a_rerun_asks_nothing(
    tiny_server: TinyServer, shared_data: Path, tmp_path: Path, report
) -> None:
    config = eval_config(shared_data, "eval.concurrency=8", "eval.retries=30", "eval.max_tokens=8")
    result = run_eval(
        config, EvalRequest(tiny_server.url, ["aime24", "math500"], tiny_server.model, tiny_server.key), tmp_path
    )
    aime, math500 = result.score(tiny_server.model, "aime24"), result.score(tiny_server.model, "math500")
    report(
        f"tiny random model: AIME24 {aime['pass@1']}% {aime['ci95']} ({aime['answered']} samples), "
        f"MATH500 {math500['pass@1']}% {math500['ci95']} ({math500['refused']} prompts over the 512-token context)"
    )
    assert aime["n"] == 30 and aime["samples"] == 4 and aime["answered"] == 120
    assert math500["n"] == 500 and math500["answered"] == 500
    assert aime["ci95"][0] <= aime["pass@1"] <= aime["ci95"][1]
    data = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert data["paper"]["aime24"]["LIMO"] == 57.1 and tiny_server.model in data["checkpoints"]

    before = httpx.get(
        f"{tiny_server.url}/stats", headers={"Authorization": f"Bearer {tiny_server.key}"}, timeout=60
    ).json()
    rows_before = (tmp_path / "eval" / SAMPLES_FILE).read_text().count("\n")
    run_eval(config, EvalRequest(tiny_server.url, ["aime24", "math500"], tiny_server.model, tiny_server.key), tmp_path)
    after = httpx.get(
        f"{tiny_server.url}/stats", headers={"Authorization": f"Bearer {tiny_server.key}"}, timeout=60
    ).json()
    assert after["models"][tiny_server.model]["requests"] == before["models"][tiny_server.model]["requests"]
    assert (tmp_path / "eval" / SAMPLES_FILE).read_text().count("\n") == rows_before
