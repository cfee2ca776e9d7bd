"""Serve's own validation of the RayService (issue 15): rayservice-eval.yaml's `serveConfigV2`, deployed the way
KubeRay deploys it, on a local Ray with the tiny CPU checkpoint.

KubeRay's RayService controller sends `serveConfigV2` as JSON in a PUT to the head's dashboard at
`/api/serve/applications/` and then polls the same path for the applications' status. This does the same against a
local Ray started with its dashboard, after swapping only what cannot run here: the engine's model fields (the
checkpoint path -> a tiny random Qwen2, device cpu, TP 1, a short context), the model deployment's resources to
what that CPU engine asks for (one CPU, no placement group), the runtime env's folders to temporary ones, and
Serve's HTTP port to a free one. The API key reaches the replica as the Secret does in the pod: as an environment
variable of the Ray processes, and so do the pods' Serve settings (the HAProxy ingress). Then an override naming
a deployment the app does not build (the `OpenAIIngress` the file used to carry) must be refused: DEPLOY_FAILED.
"""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures import build_tiny_checkpoint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RAYSERVICE = REPO / "cluster" / "kuberay" / "rayservice-eval.yaml"
KEY = "test-key-rayservice-0123456789"
DEPLOY_PATH = "/api/serve/applications/"  # KubeRay's DeployPathV2 and ServeDetailsPath
TERMINAL = {"RUNNING", "DEPLOY_FAILED", "UNHEALTHY"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_serve_config(checkpoint: Path, scratch: Path, http_port: int) -> dict[str, Any]:
    """The RayService's serveConfigV2 with only the model fields (and local folders, port) swapped."""
    from limo_ray.serve.model_server import spec_from_dict

    manifest = yaml.safe_load(RAYSERVICE.read_text())
    config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    (model,) = app["args"]["models"]
    model["engine"].update(
        model=str(checkpoint), device="cpu", tensor_parallel_size=1, pipeline_parallel_size=1, max_model_len=512
    )
    engine = spec_from_dict(model["engine"])
    for deployment in app["deployments"]:
        if deployment["name"] != f"model-{model['name']}":
            continue  # any other override is deployed as written
        deployment["ray_actor_options"] = dict(engine.actor_options())
        if engine.needs_placement_group():
            deployment["placement_group_bundles"] = engine.bundles()
        else:
            deployment.pop("placement_group_bundles", None)
            deployment.pop("placement_group_strategy", None)
    env_vars = app.setdefault("runtime_env", {}).setdefault("env_vars", {})
    for name in env_vars:
        if env_vars[name].startswith("/mnt/"):
            env_vars[name] = str(scratch / name.lower())
    # In the pod Serve listens on 0.0.0.0:8000 behind the serve service; here, a free port on localhost.
    config["http_options"] = {"host": "127.0.0.1", "port": http_port}
    return config


def pod_serve_env() -> dict[str, str]:
    """The RayService pods' Serve settings: the head container's RAY_SERVE_* variables."""
    manifest = yaml.safe_load(RAYSERVICE.read_text())
    (head,) = manifest["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in head["env"] if e["name"].startswith("RAY_SERVE_")}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A local Ray (2 CPUs) with its dashboard, the API key in its processes' environment; once per module.

    Yields a client for the dashboard that sends the cluster's Ray token, as KubeRay's does (Ray turns token
    authentication on for a cluster started with its dashboard; the RayService's `authOptions.mode: token`)."""
    import ray
    from ray._private.authentication.http_token_authentication import get_auth_headers_if_auth_enabled

    port = _free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIMO_API_KEY", KEY)  # the pods get it from the limo-api-key Secret
        patch.setenv("HF_HUB_OFFLINE", "1")
        for name, value in pod_serve_env().items():  # Serve's settings reach its processes as in the pod
            patch.setenv(name, value)
        # A stopping direct-ingress replica waits 30 s by default for every node's HAProxy to drop it; one
        # local HAProxy is told at once.
        patch.setenv("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
        patch.delenv("RAY_AUTH_MODE", raising=False)  # ray.init sets it in this process: undone afterwards
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=port,
            logging_level="WARNING",
        )
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=get_auth_headers_if_auth_enabled({}), timeout=120
        )
        try:
            deadline = time.monotonic() + 120
            while True:  # the dashboard's Serve module answers once it is up
                try:
                    if client.get(DEPLOY_PATH).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the Ray dashboard did not come up"
                time.sleep(1)
            yield client
        finally:
            client.close()
            ray.shutdown()


def _deploy(dashboard: httpx.Client, config: dict[str, Any]) -> httpx.Response:
    return dashboard.put(DEPLOY_PATH, json=config)


def _wait_for(dashboard: httpx.Client, app_name: str, statuses: set[str], timeout_s: float = 420) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        details = dashboard.get(DEPLOY_PATH).json()
        app = details.get("applications", {}).get(app_name)
        if app and app["status"] in statuses:
            return app
        assert time.monotonic() < deadline, f"{app_name} never reached {statuses}: {app and app['status']}"
        time.sleep(1)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    checkpoint = build_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny")
    return cpu_serve_config(checkpoint, tmp_path_factory.mktemp("limo"), _free_port())


def test_the_rayservice_config_deploys_and_answers(dashboard: httpx.Client, config: dict[str, Any]) -> None:
    started = time.monotonic()
    response = _deploy(dashboard, config)
    assert response.status_code == 200, response.text
    (app,) = config["applications"]
    status = _wait_for(dashboard, app["name"], TERMINAL)
    assert status["status"] == "RUNNING", status.get("message") or status
    assert set(status["deployments"]) == {d["name"] for d in app["deployments"]}
    print(f"\n    RUNNING {time.monotonic() - started:.1f} s after the PUT")

    http = config["http_options"]
    url = f"http://{http['host']}:{http['port']}{app['route_prefix'].rstrip('/')}/v1/chat/completions"
    (model,) = app["args"]["models"]
    body = {"model": model["name"], "messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 8}
    answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    assert answer.status_code == 200, answer.text
    choice = answer.json()["choices"][0]
    assert isinstance(choice["message"]["content"], str) and choice["finish_reason"] in ("stop", "length")
    # The key came from the processes' environment (api_key_env), not from the config: no key, no answer.
    assert httpx.post(url, json=body, timeout=60).status_code == 401


def test_an_override_of_a_deployment_the_app_does_not_build_fails_the_deploy(
    dashboard: httpx.Client, config: dict[str, Any]
) -> None:
    bad = copy.deepcopy(config)
    (app,) = bad["applications"]
    app["deployments"].append({"name": "OpenAIIngress", "ray_actor_options": {"num_cpus": 0}})
    response = _deploy(dashboard, bad)
    if response.status_code == 200:  # accepted: Serve applies it asynchronously and reports the failure
        status = _wait_for(dashboard, app["name"], {"DEPLOY_FAILED"}, timeout_s=180)
        assert "OpenAIIngress" in status["message"] and "does not exist" in status["message"], status["message"]
        print(f"\n    DEPLOY_FAILED: {status['message'].strip().splitlines()[-1]}")
    else:
        assert response.status_code == 400 and "OpenAIIngress" in response.text, response.text
