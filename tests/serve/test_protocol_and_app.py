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
from limo_ray.serve.protocol import RequestError, read_json_object, routing_fields, vllm_request


def test_the_front_routes_on_model_and_a_strictly_boolean_stream() -> None:
    assert routing_fields({"model": "m", "messages": []}) == ("m", False)
    assert routing_fields({"model": "m", "stream": True}) == ("m", True)
    assert routing_fields({"model": "m", "stream": None}) == ("m", False)
    for body, param in (({"stream": True}, "model"), ({"model": "m", "stream": "yes"}, "stream")):
        with pytest.raises(RequestError) as caught:
            routing_fields(body)
        assert caught.value.status == 400 and caught.value.param == param


def test_requests_take_null_valued_fields_logprobs_and_echo_as_vllms_server_does() -> None:
    """The official SDK sends fields it was given as None as JSON nulls; lm-eval's `local-completions` sends
    `logprobs` + `echo` (+ `max_tokens: 0` to score)."""
    completion = vllm_request(
        "completion",
        {"model": "m", "prompt": "a b", "logprobs": None, "echo": None, "stop": None, "user": None, "seed": None},
    )
    assert completion.logprobs is None and completion.prompt == "a b"
    scoring = vllm_request("completion", {"model": "m", "prompt": "a b", "max_tokens": 0, "echo": True, "logprobs": 5})
    assert scoring.echo and scoring.logprobs == 5 and scoring.max_tokens == 0
    chat = vllm_request(
        "chat",
        {
            "model": "m",
            "messages": [{"role": "developer", "content": [{"type": "text", "text": "be brief"}]}],
            "logprobs": True,
            "top_logprobs": 3,
            "max_completion_tokens": 8,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "stream_options": {"include_usage": True},
            "stream": True,
            "ignore_eos": True,
        },
    )
    assert chat.logprobs and chat.top_logprobs == 3 and chat.ignore_eos and chat.stream_options.include_usage


@pytest.mark.parametrize(
    ("kind", "body", "param", "words"),
    [
        ("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "n": "four"}, "n", "valid integer"),
        (
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
            "top_logprobs",
            "`logprobs` must be set",
        ),
        ("chat", {"model": "m"}, "messages", "required"),
        (
            "completion",
            {"model": "m", "prompt": "x", "stream_options": {"include_usage": True}},
            "stream_options",
            "stream=True",
        ),
        ("completion", {"model": "m"}, "prompt", "prompt"),
    ],
)
def test_malformed_requests_are_400s_that_name_the_field(kind: str, body: dict, param: str, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        vllm_request(kind, body)  # type: ignore[arg-type]
    assert caught.value.status == 400 and caught.value.param == param
    assert words in caught.value.message and caught.value.body()["error"]["code"] == 400


def test_a_body_must_be_a_json_object() -> None:
    assert read_json_object(b'{"model": "m"}') == {"model": "m"}
    for raw, words in ((b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object")):
        with pytest.raises(RequestError, match=words):
            read_json_object(raw)


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


def test_app_args_carry_every_replica_field_of_the_serve_config() -> None:
    from limo_ray.config import ServeReplicaConfig

    config = load_config("limo-32b", ["serve.max_queued_requests=77", "serve.retry_after_s=3"])
    spec = EngineSpec(name="s", model="org/s", max_model_len=4096, device="cuda")
    args = app_args(config.serve, {"s": spec})
    assert {name: args[name] for name in ServeReplicaConfig.model_fields} == {
        name: getattr(config.serve, name) for name in ServeReplicaConfig.model_fields
    }
    assert args["max_queued_requests"] == 77 and args["api_key_env"] == "LIMO_API_KEY"
    assert app_args(config.serve, {"s": spec}, retry_after_s=9)["retry_after_s"] == 9
    assert AppArgs.model_validate(args).models[0].engine["model"] == "org/s"


def test_node_resources_pin_each_replica_alone_or_each_bundle_of_its_group() -> None:
    """`cluster.node_resources.serve` (custom resources only) reaches the replica: on its own actor when it has
    no placement group, on every bundle when it has one."""
    config = load_config("tiny", ['cluster.node_resources.serve={"inference": 0.01}'])
    args = AppArgs.model_validate(serve_config(config)["applications"][0]["args"])
    assert args.node_resources == {"inference": 0.01}
    cpu = EngineSpec(name="m", model="/m", max_model_len=512, device="cpu")
    assert model_deployment_options(cpu, "m", args)["ray_actor_options"] == {
        "num_cpus": 1,
        "num_gpus": 0,
        "resources": {"inference": 0.01},
    }
    tp = EngineSpec(name="big", model="org/big", max_model_len=4096, device="cuda", tensor_parallel_size=2)
    options = model_deployment_options(tp, "big", args)
    assert options["placement_group_bundles"] == [
        {"GPU": 1.0, "CPU": 1.0, "inference": 0.01},
        {"GPU": 1.0, "inference": 0.01},
    ]
    assert "resources" not in options["ray_actor_options"]  # the group holds them
