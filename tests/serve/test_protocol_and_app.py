"""The wire format and the app's deployment options, without starting Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.engine import EngineSpec
from limo_ray.errors import LimoError
from limo_ray.serve import AppArgs, app_args, build_app, engine_specs, serve_config
from limo_ray.serve.app import model_deployment_options
from limo_ray.serve.protocol import ChatCompletionRequest, RequestError, parse_request, sse


def _parse(kind: str, body: object) -> object:
    return parse_request(kind, json.dumps(body).encode())  # type: ignore[arg-type]


def test_chat_request_accepts_the_openai_fields_and_vllm_extras() -> None:
    request = _parse(
        "chat",
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
                {"role": "user", "content": "hi"},
            ],
            "n": 4,
            "temperature": 0.6,
            "top_p": 0.95,
            "max_tokens": 32,
            "stop": "###",
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert isinstance(request, ChatCompletionRequest)
    assert request.chat() == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert request.stop == ["###"] and request.ignore_eos and request.token_limit() == 32


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b"{not json", None, "not valid JSON"),
        ([1, 2], None, "JSON object"),
        ({"model": "m", "messages": []}, "messages", "at least 1"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n", "greater than or equal to 1"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature", "less than"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs", "unsupported"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "Input should be"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "required"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages",
            "only text",
        ),
    ],
)
def test_malformed_chat_requests_are_400s_that_name_the_field(body: object, param: str | None, words: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RequestError) as caught:
        parse_request("chat", raw)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert words in caught.value.message
    assert caught.value.body()["error"]["type"] == "invalid_request_error"


def test_completion_request_takes_one_prompt_or_a_list() -> None:
    assert _parse("completion", {"model": "m", "prompt": "a"}).prompts() == ["a"]  # type: ignore[attr-defined]
    assert _parse("completion", {"model": "m", "prompt": ["a", "b"]}).prompts() == ["a", "b"]  # type: ignore[attr-defined]
    with pytest.raises(RequestError):
        _parse("completion", {"model": "m", "prompt": []})


def test_merge_interleaves_streams_as_items_arrive_and_tags_their_index() -> None:
    import asyncio

    from limo_ray.serve.model_server import _merge

    async def ticks(name: str, delays: list[float]):
        for delay in delays:
            await asyncio.sleep(delay)
            yield name

    async def collect() -> list[tuple[int, str]]:
        return [item async for item in _merge([ticks("a", [0.0, 0.05]), ticks("b", [0.02, 0.0])])]

    assert asyncio.run(collect()) == [(0, "a"), (1, "b"), (1, "b"), (0, "a")]


def test_sse_events_are_data_lines() -> None:
    assert sse({"a": 1}) == 'data: {"a":1}\n\n'
    assert sse("[DONE]") == "data: [DONE]\n\n"


def test_a_checkpoint_inherits_the_trained_models_engine_settings(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    config = load_config("tiny")
    specs = engine_specs(config, {"sft": str(tmp_path)}, device="cpu")
    spec = specs["sft"]
    student = config.models[config.train.model]
    assert spec.model == str(tmp_path) and spec.max_model_len == student.max_model_len and spec.dtype == student.dtype
    with pytest.raises(LimoError, match="not a model folder"):
        engine_specs(config, {"sft": str(tmp_path / "missing")}, device="cpu")
    # A hub name goes to vLLM as it is (HF cache, HF_HUB_OFFLINE and the token come from the environment).
    assert engine_specs(config, {"hub": "Qwen/Qwen2.5-0.5B-Instruct"}, device="cpu")["hub"].model == (
        "Qwen/Qwen2.5-0.5B-Instruct"
    )
    # A name under `models:` keeps that entry's settings; without checkpoints, serve.models is served.
    assert list(engine_specs(config, device="cpu")) == config.serve.models


def test_cpu_replica_reserves_one_cpu_and_scales_between_min_and_max() -> None:
    spec = EngineSpec(name="m", model="/m", max_model_len=512, device="cpu")
    fixed = model_deployment_options(spec, "m", AppArgs.model_validate({"models": [{"name": "m", "engine": {}}]}))
    assert fixed["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 0}
    assert fixed["num_replicas"] == 1 and "autoscaling_config" not in fixed
    args = AppArgs.model_validate(
        {
            "models": [{"name": "m", "engine": {}}],
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 16,
            "max_ongoing_requests": 64,
            "max_queued_requests": 100,
        }
    )
    scaled = model_deployment_options(spec, "m", args)
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "initial_replicas": 1,
        "target_ongoing_requests": 16,
    }
    assert scaled["max_ongoing_requests"] == 64 and scaled["max_queued_requests"] == 100
    tp = EngineSpec(name="big", model="org/big", max_model_len=4096, device="cuda", tensor_parallel_size=4)
    options = model_deployment_options(tp, "big", args)
    assert options["placement_group_bundles"] == [{"GPU": 1.0, "CPU": 1.0}] + [{"GPU": 1.0}] * 3
    assert options["ray_actor_options"] == {"num_cpus": 0, "num_gpus": 0}


def test_serve_build_config_validates_against_rays_schema_and_builds(tmp_path: Path, monkeypatch) -> None:
    from ray.serve.schema import ServeDeploySchema

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("LIMO_API_KEY", "sekrit-value")
    config = load_config("tiny", ["serve.max_queued_requests=8"])
    document = serve_config(config, {"sft": str(tmp_path)}, device="cpu")
    ServeDeploySchema.model_validate(document)
    (application,) = document["applications"]
    assert application["import_path"] == "limo_ray.serve.app:build_app"
    assert document["http_options"] == {"host": "127.0.0.1", "port": 8000}
    assert "sekrit" not in json.dumps(document) and application["args"]["api_key_sha256"] is None
    app = build_app(application["args"])  # binds the graph; starts nothing
    # One model: its replica is the ingress (engine and routes in one process), bounded by Serve's queue.
    deployment = app._bound_deployment
    assert deployment.name == "model-sft" and deployment.ray_actor_options["num_cpus"] == 1
    assert deployment.max_queued_requests == 8
    assert deployment._deployment_config.backpressure_config.retry_after_s == 1


def test_two_models_make_two_deployments_behind_one_ingress(tmp_path: Path) -> None:
    spec = {"name": "x", "model": str(tmp_path), "max_model_len": 512, "device": "cpu"}
    app = build_app({"models": [{"name": "a", "engine": spec}, {"name": "b/c", "engine": spec}]})
    handles = app._bound_deployment.init_args[0]
    assert sorted(handles) == ["a", "b/c"]
    assert sorted(h._bound_deployment.name for h in handles.values()) == ["model-a", "model-b_c"]
    assert all(h._bound_deployment.ray_actor_options["num_cpus"] == 1 for h in handles.values())
    assert app._bound_deployment.ray_actor_options["num_cpus"] == 0  # the ingress reserves no CPU
    with pytest.raises(LimoError, match="unique"):
        build_app({"models": [{"name": "a", "engine": spec}, {"name": "a", "engine": spec}]})


def test_app_args_carry_the_serve_config(tmp_path: Path) -> None:
    config = load_config("limo-32b")
    spec = EngineSpec(name="s", model="org/s", max_model_len=4096, device="cuda")
    args = app_args(config.serve, {"s": spec})
    assert args["max_replicas"] == config.serve.max_replicas and args["api_key_env"] == "LIMO_API_KEY"
