"""cluster/kuberay/fabric.py renders the cloud-neutral manifests with EFA (EKS, p5.48xlarge) or GPUDirect-TCPX
(GKE, a3-highgpu-8g): every rendering still passes the KubeRay CRDs strictly, only GPU worker pods change, and
they get the fabric's resources, devices, sidecar and NCCL environment."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube_schema import (
    REPO,
    is_gpu_pod,
    pod_templates,
    ray_cluster_specs,
    ray_documents,
    validation_errors,
)

FABRIC_PY = REPO / "cluster" / "kuberay" / "fabric.py"


def _load_fabric():
    spec = importlib.util.spec_from_file_location("limo_cluster_fabric", FABRIC_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fabric = _load_fabric()
RAY_DOCS = ray_documents()
CASES = [(f, name, doc) for f in sorted(fabric.FABRICS) for name, doc in RAY_DOCS]


def _pods(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(group, t) for _, spec in ray_cluster_specs(doc) for group, t in pod_templates(spec)]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize(("which", "name", "doc"), CASES, ids=[f"{f}-{n}" for f, n, _ in CASES])
def test_rendered_manifest_passes_the_crd_and_changes_only_gpu_pods(
    which: str, name: str, doc: dict[str, Any], crd_dir: Path
) -> None:
    before = copy.deepcopy(doc)
    (rendered,) = fabric.render([doc], which)
    assert doc == before, "the input is not modified (the manifests share env lists through YAML anchors)"
    assert validation_errors(rendered, crd_dir) == []
    gpu_pods = 0
    for (group, old), (_, new) in zip(_pods(doc), _pods(rendered), strict=True):
        if not is_gpu_pod(old):
            assert new == old, f"{name}/{group}: a head or CPU pod changed"
            continue
        gpu_pods += 1
        pod = new["spec"]
        (ray,) = [c for c in pod["containers"] if c["name"].startswith("ray-")]
        for container in pod["containers"]:
            assert container["resources"]["requests"]["ephemeral-storage"], f"{name}/{group}/{container['name']}"
        if which == "efa":
            assert ray["resources"]["requests"]["vpc.amazonaws.com/efa"] == "32"
            assert ray["resources"]["limits"]["vpc.amazonaws.com/efa"] == "32"
            assert _env(ray)["FI_PROVIDER"] == "efa"
            assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == "p5.48xlarge"
        else:
            annotations = new["metadata"]["annotations"]
            networks = json.loads(annotations["networking.gke.io/interfaces"])
            assert [n["interfaceName"] for n in networks] == ["eth0", "eth1", "eth2", "eth3", "eth4"]
            assert "/dev/nvidia7" in annotations["devices.gke.io/container.tcpx-daemon"]
            (daemon,) = [c for c in pod["containers"] if c["name"] == "tcpx-daemon"]
            socket = {m["mountPath"]: m["name"] for m in daemon["volumeMounts"]}[fabric.TCPX_SOCKET]
            assert {m["mountPath"]: m["name"] for m in ray["volumeMounts"]}[fabric.TCPX_SOCKET] == socket
            assert _env(ray)["NCCL_GPUDIRECTTCPX_SOCKET_IFNAME"] == "eth1,eth2,eth3,eth4"
            assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-h100-80gb"
        # The scratch volume, zone affinity and shared-volume mounts survive.
        assert {m["mountPath"] for m in ray["volumeMounts"]} >= {"/mnt/limo", "/mnt/scratch"}
        assert pod["affinity"] == old["spec"]["affinity"]
    assert gpu_pods, f"{name}: no GPU pod to render"


def test_the_manifests_themselves_stay_cloud_neutral() -> None:
    text = yaml.safe_dump([doc for _, doc in RAY_DOCS])
    assert "vpc.amazonaws.com/efa" not in text and "networking.gke.io" not in text


@pytest.mark.parametrize("which", sorted(fabric.FABRICS))
def test_command_line_prints_what_render_returns(which: str) -> None:
    path = REPO / "cluster" / "kuberay" / "rayjob-train.yaml"
    result = subprocess.run(
        [sys.executable, str(FABRIC_PY), which, str(path)], capture_output=True, text=True, check=True, timeout=60
    )
    assert "&id" not in result.stdout and "*id" not in result.stdout, "plain YAML, no aliases"
    assert list(yaml.safe_load_all(result.stdout)) == fabric.render(list(yaml.safe_load_all(path.read_text())), which)


def test_an_in_place_env_edit_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RayJobs share one `env:` list between head and workers (a YAML anchor): appending to it in place would
    give the head the fabric's environment too. The check above sees that."""
    doc = next(d for n, d in RAY_DOCS if "rayjob-train" in n)
    monkeypatch.setattr(
        fabric, "_add_env", lambda c, env: c["env"].extend({"name": k, "value": v} for k, v in env.items())
    )
    (rendered,) = fabric.render([doc], "efa")
    (_, head), *_ = _pods(rendered)
    assert "FI_PROVIDER" in _env(head["spec"]["containers"][0])
