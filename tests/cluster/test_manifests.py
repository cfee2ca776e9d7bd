"""Every manifest under cluster/ is checked the way the cluster would check it, and stricter.

- RayCluster / RayJob / RayService against the KubeRay v1.7 CRDs' v1 schema in strict mode (defaults filled,
  unknown fields are errors), plus a misspelt field that must fail, so the check can fail;
- each `serveConfigV2` through Ray's `ServeDeploySchema`, with unknown keys rejected (Ray's pydantic models
  ignore them), against the limo-32b preset's `serve:` block and the student's engine bundles, and against the
  deployments `build_app(args)` really builds (an override of any other name fails Serve's deploy);
- each `runtimeEnvYAML` through Ray's `RuntimeEnv`, with no secrets in it;
- each RayJob's entrypoint names a `jobs/` script;
- the invariants every Ray pod shares: the head runs no tasks and is ClusterIP-only, Ray's metrics port is
  exported, the shared volume is mounted at the same path everywhere, secrets come from Secrets, every container
  requests ephemeral storage; GPU pods stage checkpoints on a size-limited disk emptyDir at `train.scratch_dir`,
  run on the GPU node type and keep to one zone;
- the PodMonitor, Secret templates and PVC carry their kinds' required fields, and the Secrets hold no value.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from limo_ray.config import load_config
from limo_ray.engine.spec import engine_spec
from tests.cluster.kube_schema import (
    CRD_FILES,
    REPO,
    is_gpu_pod,
    manifest_documents,
    pod_templates,
    ray_cluster_specs,
    ray_documents,
    validation_errors,
)

# The jobs/ entry points; a RayJob must run one of them.
JOB_SCRIPTS = {"jobs/curate.py", "jobs/train.py", "jobs/eval.py", "jobs/pipeline.py"}
SHARED_MOUNT = "/mnt/limo"
SHARED_CLAIM = "limo-shared"
METRICS_PORT = 8080
# The project image holds the repository at /app (cluster/Dockerfile); here the checkout stands in for it.
IMAGE_WORKDIR = "/app"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY", re.I)
OTHER_KINDS = {"PodMonitor", "Secret", "PersistentVolumeClaim"}


DOCS = manifest_documents()
RAY_DOCS = ray_documents()


def _by_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in DOCS if doc.get("kind") == kind]


@pytest.fixture(scope="module")
def preset():
    return load_config("limo-32b")


def test_every_manifest_is_a_known_kind() -> None:
    """A new kind of manifest must come with a check here, not slip past them."""
    assert {"RayCluster", "RayJob", "RayService", "PodMonitor", "Secret"} <= {d["kind"] for _, d in DOCS}
    unknown = [(name, doc.get("kind")) for name, doc in DOCS if doc.get("kind") not in set(CRD_FILES) | OTHER_KINDS]
    assert not unknown


# ----------------------------------------------------------------------------------------------- CRD schemas


@pytest.mark.parametrize(("name", "doc"), RAY_DOCS, ids=[n for n, _ in RAY_DOCS])
def test_ray_manifests_match_the_crd_strictly(name: str, doc: dict[str, Any], crd_dir: Path) -> None:
    assert validation_errors(doc, crd_dir) == []


def _raycluster() -> dict[str, Any]:
    return copy.deepcopy(next(doc for _, doc in _by_kind("RayCluster")))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["spec"]["workerGroupSpecs"][0].update(minReplica=1), r"workerGroupSpecs\.0: .*'minReplica'"),
        (
            lambda m: m["spec"]["headGroupSpec"].update(rayStartParam=m["spec"]["headGroupSpec"].pop("rayStartParams")),
            r"headGroupSpec: .*'rayStartParam'",
        ),
        (
            lambda m: m["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
                volumeMount=[{"name": "shared", "mountPath": "/x"}]
            ),
            r"containers\.0: .*'volumeMount'",
        ),
        (lambda m: m["spec"]["autoscalerOptions"].update(version="v3"), r"autoscalerOptions\.version: 'v3'"),
        (lambda m: m["spec"]["workerGroupSpecs"][0].update(maxReplicas="2"), r"maxReplicas: '2' is not of type"),
        (lambda m: m["spec"]["workerGroupSpecs"][0].pop("template"), r"'template' is a required property"),
        (lambda m: m["metadata"].update(lables={"a": "b"}), r"metadata\.lables: unknown"),
        (lambda m: m.update(apiVersion="ray.io/v1alpha1"), r"apiVersion"),
    ],
)
def test_a_misspelt_or_wrong_field_fails(mutate, expected: str, crd_dir: Path) -> None:
    manifest = _raycluster()
    mutate(manifest)
    problems = validation_errors(manifest, crd_dir)
    assert any(re.search(expected, p) for p in problems), problems


def test_schema_defaults_are_filled_before_required_is_checked(crd_dir: Path) -> None:
    # minReplicas / maxReplicas are required by the schema but defaulted: leaving them out is valid.
    manifest = _raycluster()
    for group in manifest["spec"]["workerGroupSpecs"]:
        del group["minReplicas"], group["maxReplicas"]
    assert validation_errors(manifest, crd_dir) == []


# ----------------------------------------------------------------------------------------------- cluster invariants


@pytest.mark.parametrize(("name", "doc"), RAY_DOCS, ids=[n for n, _ in RAY_DOCS])
def test_every_ray_cluster_keeps_the_house_rules(name: str, doc: dict[str, Any]) -> None:
    specs = list(ray_cluster_specs(doc))
    assert specs, f"{name}: a RayJob here brings its own cluster (rayClusterSpec)"
    for where, spec in specs:
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0", f"{where}: the head must run no tasks"
        assert head.get("serviceType") == "ClusterIP", f"{where}: dashboard and job API stay inside the cluster"
        assert "enableIngress" not in head or head["enableIngress"] is False
        assert spec.get("authOptions", {}).get("mode") == "token", f"{where}: Ray token auth on"
        assert spec.get("rayVersion") == "2.60.0"
        if spec.get("enableInTreeAutoscaling"):
            assert spec["autoscalerOptions"]["version"] == "v2"
        images = set()
        for group, template in pod_templates(spec):
            params = head["rayStartParams"] if group == "head" else _group(spec, group)["rayStartParams"]
            assert params["metrics-export-port"] == str(METRICS_PORT), f"{where}/{group}"
            pod = template["spec"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            for container in pod["containers"]:
                images.add(container["image"])
                ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
                assert ports.get("metrics") == METRICS_PORT, f"{where}/{group}: metrics port exported"
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert SHARED_MOUNT in mounts, f"{where}/{group}: shared storage at {SHARED_MOUNT}"
                claim = volumes[mounts[SHARED_MOUNT]]["persistentVolumeClaim"]["claimName"]
                assert claim == SHARED_CLAIM
                for env in container.get("env", []):
                    if SECRET_NAME.search(env["name"]):
                        assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]
        assert len(images) == 1, f"{where}: one image for every pod, got {images}"


_QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_SUFFIXES = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_SUFFIXES |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def quantity(text: str | int) -> float:
    """A Kubernetes resource quantity in base units (bytes for storage)."""
    match = _QUANTITY.match(str(text))
    assert match, f"not a quantity: {text!r}"
    return float(match["number"]) * _SUFFIXES[match["suffix"]]


# ZeRO-3 shards of the 32B student staged per node per save: ~25 GB per rank x 8 ranks (train/checkpoint.py); the
# scratch must hold a save being uploaded while the next is written, plus rank 0's ~65 GB HF export.
SCRATCH_NEEDED = 2 * 8 * 25e9 + 65e9


@pytest.mark.parametrize(("name", "doc"), RAY_DOCS, ids=[n for n, _ in RAY_DOCS])
def test_pods_request_disk_and_gpu_pods_stage_on_a_scratch_volume(name: str, doc: dict[str, Any], preset) -> None:
    """Finding 6: the kubelet evicts a pod past its ephemeral storage; every Ray container states what it needs,
    and every GPU pod has a disk-backed, size-limited emptyDir at the preset's `train.scratch_dir`."""
    scratch_dir = preset.train.scratch_dir
    assert scratch_dir == "/mnt/scratch", "the cluster convention the manifests mount"
    for where, spec in ray_cluster_specs(doc):
        for group, template in pod_templates(spec):
            pod = template["spec"]
            for container in pod["containers"]:
                resources = container["resources"]
                request = resources.get("requests", {}).get("ephemeral-storage")
                limit = resources.get("limits", {}).get("ephemeral-storage")
                assert request and limit, f"{where}/{group}/{container['name']}: no ephemeral-storage request/limit"
                assert quantity(request) <= quantity(limit), f"{where}/{group}"
            if not is_gpu_pod(template):
                continue
            volumes = {v["name"]: v for v in pod["volumes"]}
            (container,) = [c for c in pod["containers"] if "nvidia.com/gpu" in c["resources"]["limits"]]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert scratch_dir in mounts, f"{where}/{group}: no volume at {scratch_dir}"
            empty_dir = volumes[mounts[scratch_dir]].get("emptyDir")
            assert empty_dir is not None, f"{where}/{group}: {scratch_dir} must be an emptyDir (node-local disk)"
            assert empty_dir.get("medium", "") == "", f"{where}/{group}: scratch on disk, not in memory"
            size = quantity(empty_dir["sizeLimit"])
            assert size >= SCRATCH_NEEDED, f"{where}/{group}: scratch {empty_dir['sizeLimit']} < two saves"
            # The kubelet schedules on requests: the pod must ask for the scratch it may fill, and more.
            assert quantity(container["resources"]["requests"]["ephemeral-storage"]) > size, f"{where}/{group}"


@pytest.mark.parametrize(("name", "doc"), RAY_DOCS, ids=[n for n, _ in RAY_DOCS])
def test_gpu_pods_land_on_gpu_nodes_in_one_zone(name: str, doc: dict[str, Any]) -> None:
    """The GPU group asks for the node type by a label every cloud sets, and all its pods of one Ray cluster
    share a zone (NCCL across zones is slow, EFA and TCPX do not cross them)."""
    for where, spec in ray_cluster_specs(doc):
        for group, template in pod_templates(spec):
            pod = template["spec"]
            if not is_gpu_pod(template):
                assert "podAffinity" not in pod.get("affinity", {}), f"{where}/{group}"
                continue
            assert pod.get("nodeSelector", {}).get("node.kubernetes.io/instance-type"), f"{where}/{group}: no GPU node"
            terms = (
                pod.get("affinity", {}).get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
            )
            zone_terms = [term for term in terms if term["topologyKey"] == "topology.kubernetes.io/zone"]
            assert zone_terms, f"{where}/{group}: no same-zone pod affinity"
            for term in zone_terms:
                # This group's own pods (KubeRay's labels), of this pod's own Ray cluster.
                assert term["labelSelector"]["matchLabels"] == {"ray.io/node-type": "worker", "ray.io/group": group}
                assert term["matchLabelKeys"] == ["ray.io/cluster"]


def _gpu_pod(manifest: dict[str, Any]) -> dict[str, Any]:
    return next(t for _, spec in ray_cluster_specs(manifest) for _, t in pod_templates(spec) if is_gpu_pod(t))["spec"]


@pytest.mark.parametrize(
    ("check", "mutate"),
    [
        ("scratch", lambda pod: pod["volumes"].pop()),
        ("scratch", lambda pod: pod["volumes"][-1]["emptyDir"].update(medium="Memory")),
        ("scratch", lambda pod: pod["volumes"][-1]["emptyDir"].update(sizeLimit="100Gi")),
        ("scratch", lambda pod: pod["containers"][0]["resources"]["requests"].pop("ephemeral-storage")),
        ("scratch", lambda pod: pod["containers"][0]["resources"]["requests"].update({"ephemeral-storage": "500Gi"})),
        ("zone", lambda pod: pod.pop("nodeSelector")),
        (
            "zone",
            lambda pod: pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0].pop(
                "matchLabelKeys"
            ),
        ),
        ("zone", lambda pod: pod.pop("affinity")),
    ],
)
def test_scratch_and_zone_checks_can_fail(check: str, mutate, preset) -> None:
    manifest = copy.deepcopy(_rayjob("train"))
    pod = _gpu_pod(manifest)
    assert pod["volumes"][-1]["name"] == "scratch"
    mutate(pod)
    with pytest.raises((AssertionError, KeyError)):
        if check == "scratch":
            test_pods_request_disk_and_gpu_pods_stage_on_a_scratch_volume("mutated", manifest, preset)
        else:
            test_gpu_pods_land_on_gpu_nodes_in_one_zone("mutated", manifest)


def _group(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in spec["workerGroupSpecs"] if g["groupName"] == name)


def _gpu_groups(spec: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    groups = []
    for group in spec.get("workerGroupSpecs", []):
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        gpus = int(limits.get("nvidia.com/gpu", 0))
        if gpus:
            groups.append((group, gpus))
    return groups


def _rayjob(stage: str) -> dict[str, Any]:
    return next(doc for _, doc in _by_kind("RayJob") if doc["metadata"]["name"] == f"limo-{stage}")


def test_train_job_is_a_fixed_group_of_the_presets_size(preset) -> None:
    spec = _rayjob("train")["spec"]["rayClusterSpec"]
    assert not spec.get("enableInTreeAutoscaling"), "ZeRO-3 partitions over a fixed set of ranks"
    ((group, gpus),) = _gpu_groups(spec)
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == preset.cluster.num_nodes
    assert gpus == preset.cluster.gpus_per_node
    assert group["replicas"] * gpus == preset.train.num_workers == 16


def test_curate_job_fits_every_engine_of_the_preset(preset) -> None:
    spec = _rayjob("curate")["spec"]["rayClusterSpec"]
    ((group, gpus),) = _gpu_groups(spec)
    assert group["minReplicas"] == 0, "no GPUs held while the CPU stages run"
    cur = preset.curate
    for name in {cur.weak.model, cur.strong.model, *cur.chains.models}:
        engine = engine_spec(preset, name, device="cuda")
        # A TP group sits in one pod; pipeline stages may take whole pods.
        assert engine.tensor_parallel_size <= gpus and gpus % engine.tensor_parallel_size == 0, name
        assert engine.world_size <= group["maxReplicas"] * gpus, name


def test_eval_job_and_service_can_serve_the_presets_replicas(preset) -> None:
    student = engine_spec(preset, preset.train.model, device="cuda")
    service = next(doc for _, doc in _by_kind("RayService"))
    for spec in (_rayjob("eval")["spec"]["rayClusterSpec"], service["spec"]["rayClusterConfig"]):
        ((group, gpus),) = _gpu_groups(spec)
        assert gpus % student.world_size == 0
        assert group["maxReplicas"] * gpus >= preset.serve.max_replicas * student.world_size


# ----------------------------------------------------------------------------------------------- RayJob fields


@pytest.mark.parametrize("stage", ["curate", "train", "eval"])
def test_rayjob_lifecycle_fields(stage: str) -> None:
    spec = _rayjob(stage)["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode"


@pytest.mark.parametrize("stage", ["curate", "train", "eval"])
def test_rayjob_entrypoint_runs_a_jobs_script(stage: str) -> None:
    argv = shlex.split(_rayjob(stage)["spec"]["entrypoint"])
    assert argv[0] == "python"
    script = argv[1]
    assert script in JOB_SCRIPTS
    assert script == f"jobs/{stage}.py"
    assert (REPO / script).is_file(), f"{script} is named by the RayJob but missing"
    assert argv[argv.index("--config") + 1] == "limo-32b"
    assert argv[argv.index("--run-dir") + 1].startswith(SHARED_MOUNT + "/")
    for i, arg in enumerate(argv):
        if arg == "--set":
            key, sep, _ = argv[i + 1].partition("=")
            assert sep and key, argv[i + 1]


def _runtime_envs() -> list[tuple[str, str]]:
    envs = [(f"{name}:runtimeEnvYAML", doc["spec"]["runtimeEnvYAML"]) for name, doc in _by_kind("RayJob")]
    for name, doc in _by_kind("RayService"):
        for app in yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"]:
            envs.append((f"{name}:{app['name']}.runtime_env", yaml.safe_dump(app.get("runtime_env", {}))))
    return envs


@pytest.mark.parametrize(("where", "text"), _runtime_envs(), ids=[w for w, _ in _runtime_envs()])
def test_runtime_envs_parse_with_ray(where: str, text: str) -> None:
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load(text)
    assert isinstance(env, dict)
    unknown = set(env) - set(RuntimeEnv.known_fields)
    assert not unknown, f"{where}: unknown runtime_env fields {unknown} (Ray would treat them as plugins)"
    if env.get("working_dir") == IMAGE_WORKDIR:
        # Uploaded from the submitter pod, where the image holds the repository at /app.
        env["working_dir"] = str(REPO)
    RuntimeEnv(**env)
    for key, value in env.get("env_vars", {}).items():
        assert not SECRET_NAME.search(key), f"{where}: secret {key} in a runtime env (use a Secret)"
        assert isinstance(value, str)


# ----------------------------------------------------------------------------------------------- serveConfigV2


def strict_serve_config_errors(config: dict[str, Any]) -> list[str]:
    """Keys Ray's Serve schemas would silently ignore; then Ray's own validation of what is left."""
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    def unknown(where: str, given: dict[str, Any], model: Any) -> list[str]:
        return [f"{where}: unknown key {key!r}" for key in sorted(set(given) - set(model.model_fields))]

    problems = unknown("(top level)", config, ServeDeploySchema)
    for app in config.get("applications", []):
        app_name = app.get("name", "?")
        problems += unknown(f"applications[{app_name}]", app, ServeApplicationSchema)
        for dep in app.get("deployments", []):
            where = f"applications[{app_name}].deployments[{dep.get('name', '?')}]"
            problems += unknown(where, dep, DeploymentSchema)
            if isinstance(dep.get("autoscaling_config"), dict):
                problems += unknown(f"{where}.autoscaling_config", dep["autoscaling_config"], AutoscalingConfig)
                try:
                    AutoscalingConfig(**dep["autoscaling_config"])
                except Exception as exc:  # pydantic's ValidationError, or Ray's ValueError
                    problems.append(f"{where}.autoscaling_config: {exc}")
            if isinstance(dep.get("ray_actor_options"), dict):
                problems += unknown(f"{where}.ray_actor_options", dep["ray_actor_options"], RayActorOptionsSchema)
    try:
        ServeDeploySchema.model_validate(config)
    except Exception as exc:
        problems.append(f"ServeDeploySchema: {exc}")
    return problems


def _serve_configs() -> list[tuple[str, dict[str, Any]]]:
    return [(name, yaml.safe_load(doc["spec"]["serveConfigV2"])) for name, doc in _by_kind("RayService")]


@pytest.mark.parametrize(("name", "config"), _serve_configs(), ids=[n for n, _ in _serve_configs()])
def test_serve_config_is_strictly_valid_and_matches_the_preset(name: str, config: dict[str, Any], preset) -> None:
    assert strict_serve_config_errors(config) == []
    (app,) = config["applications"]
    assert app["import_path"] == "limo_ray.serve.app:build_app"
    args = app["args"]
    (model,) = args["models"]
    # The served engine is the preset's student with the checkpoint's path: EngineSpec field for field.
    student = engine_spec(preset, preset.train.model, device="cuda")
    expected_engine = {**dataclasses.asdict(student), "model": model["engine"]["model"]}
    assert student.__class__(**model["engine"]) == student.__class__(**expected_engine)
    assert model["engine"]["model"].startswith(SHARED_MOUNT + "/")
    serve = preset.serve
    for key in ("min_replicas", "max_replicas", "target_ongoing_requests", "max_ongoing_requests"):
        assert args[key] == getattr(serve, key), key
    deployments = {d["name"]: d for d in app["deployments"]}
    dep = deployments[f"model-{model['name']}"]
    auto = dep["autoscaling_config"]
    assert (auto["min_replicas"], auto["max_replicas"]) == (serve.min_replicas, serve.max_replicas)
    assert auto["target_ongoing_requests"] == serve.target_ongoing_requests
    assert dep["max_ongoing_requests"] == serve.max_ongoing_requests
    assert dep["max_queued_requests"] == serve.max_queued_requests
    # One replica = one engine in a placement group of the student's bundles, exactly as EngineSpec gives them.
    assert [{k: float(v) for k, v in b.items()} for b in dep["placement_group_bundles"]] == student.bundles()
    assert dep["ray_actor_options"] == student.actor_options()


def built_deployment_names(app: dict[str, Any]) -> set[str]:
    """The deployments Serve builds for one application of a serve config: its import path called with its args,
    then Serve's own build step (the one the controller's build task runs, which names the deployments)."""
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    application = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]), app.get("args", {}))
    return {deployment.name for deployment in build_app(application, name=app["name"]).deployments}


def unknown_deployment_overrides(config: dict[str, Any]) -> list[str]:
    """Overrides naming a deployment the application does not build: Serve fails such a deploy (DEPLOY_FAILED)."""
    problems = []
    for app in config["applications"]:
        known = built_deployment_names(app)
        for unknown in sorted({d["name"] for d in app.get("deployments", [])} - known):
            problems.append(
                f"applications[{app['name']}]: deployment {unknown!r} is not built (built: {sorted(known)})"
            )
    return problems


@pytest.mark.parametrize(("name", "config"), _serve_configs(), ids=[n for n, _ in _serve_configs()])
def test_serve_config_overrides_only_deployments_the_app_builds(name: str, config: dict[str, Any]) -> None:
    """Every configured deployment is one `build_app(args)` really builds (one model: only `model-student`)."""
    from limo_ray.serve.app import AppArgs

    for app in config["applications"]:
        AppArgs.model_validate(app["args"])
    assert unknown_deployment_overrides(config) == []


def test_an_override_of_a_deployment_the_app_does_not_build_is_caught() -> None:
    """The check above can fail: the router deployment exists only with several models."""
    config = copy.deepcopy(_serve_configs()[0][1])
    app = config["applications"][0]
    app["deployments"].append({"name": "OpenAIIngress", "ray_actor_options": {"num_cpus": 0}})
    (problem,) = unknown_deployment_overrides(config)
    assert "'OpenAIIngress' is not built" in problem
    # With a second model the app does build the router, and the same override is known.
    first = app["args"]["models"][0]
    app["args"]["models"].append({"name": "base", "engine": {**first["engine"], "name": "base"}})
    assert "OpenAIIngress" in built_deployment_names(app)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["autoscaling_config"].update(target_ongoing_request=8), "target_ongoing_request"),
        (lambda d: d.update(max_ongoing_request=8), "max_ongoing_request"),
        (lambda d: d["ray_actor_options"].update(num_gpu=1), "num_gpu"),
        (lambda d: d["autoscaling_config"].update(min_replicas=9), "max_replicas"),
    ],
)
def test_serve_config_typos_are_rejected(mutate, expected: str) -> None:
    config = copy.deepcopy(_serve_configs()[0][1])
    mutate(config["applications"][0]["deployments"][0])
    problems = strict_serve_config_errors(config)
    assert any(expected in p for p in problems), problems


# ----------------------------------------------------------------------------------------------- other kinds


def test_podmonitors_scrape_ports_the_ray_pods_export() -> None:
    monitors = _by_kind("PodMonitor")
    assert {doc["spec"]["selector"]["matchLabels"]["ray.io/node-type"] for _, doc in monitors} == {"head", "worker"}
    exported = {
        port["name"]
        for _, doc in RAY_DOCS
        for _, spec in ray_cluster_specs(doc)
        for _, template in pod_templates(spec)
        for container in template["spec"]["containers"]
        for port in container.get("ports", [])
    }
    pod_labels = {
        key: value
        for _, doc in RAY_DOCS
        for _, spec in ray_cluster_specs(doc)
        for _, template in pod_templates(spec)
        for key, value in template["metadata"]["labels"].items()
    }
    for name, doc in monitors:
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", name
        assert doc["metadata"]["name"], name
        selector = doc["spec"]["selector"]["matchLabels"]
        assert all(pod_labels.get(k) == v for k, v in selector.items() if not k.startswith("ray.io/")), name
        endpoints = doc["spec"]["podMetricsEndpoints"]
        assert endpoints, name
        for endpoint in endpoints:
            assert endpoint["port"] in exported, f"{name}: scrapes port {endpoint['port']!r} no pod exports"
            assert endpoint.get("path", "/metrics") == "/metrics"


def test_secret_templates_hold_no_values() -> None:
    secrets = _by_kind("Secret")
    assert "limo-hub-token" in {doc["metadata"]["name"] for _, doc in secrets}
    for name, doc in secrets:
        assert doc["apiVersion"] == "v1" and doc["metadata"]["name"] and doc["type"] == "Opaque", name
        values = {**(doc.get("stringData") or {}), **(doc.get("data") or {})}
        assert values, f"{name}: a template names its keys"
        assert all(v in (None, "") for v in values.values()), f"{name}: a template must hold no value"
    hub = next(doc for _, doc in secrets if doc["metadata"]["name"] == "limo-hub-token")
    assert set(hub["stringData"]) == {"HF_TOKEN"}


def test_shared_volume_claim() -> None:
    ((name, pvc),) = _by_kind("PersistentVolumeClaim")
    assert pvc["apiVersion"] == "v1" and pvc["metadata"]["name"] == SHARED_CLAIM, name
    assert "ReadWriteMany" in pvc["spec"]["accessModes"], "every pod writes to it"
    assert pvc["spec"]["resources"]["requests"]["storage"]
