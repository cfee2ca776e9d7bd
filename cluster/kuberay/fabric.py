"""Render the KubeRay manifests with a cloud's GPU network fabric: AWS EFA (p5.48xlarge) or GCP GPUDirect-TCPX
(a3-highgpu-8g).

The manifests beside this file are cloud-neutral: without a fabric, NCCL between the two GPU pods goes over the
pods' ordinary TCP network. Rendered with one, the GPU worker pods (those asking for `nvidia.com/gpu`) get what
the cloud's documentation asks of a pod; head and CPU pods are left as they are:

    python cluster/kuberay/fabric.py efa  cluster/kuberay/rayjob-train.yaml | kubectl apply -f -
    python cluster/kuberay/fabric.py tcpx cluster/kuberay/rayjob-train.yaml | kubectl apply -f -

What the cluster must provide first (the EFA device plugin; GKE multi-networking with the GPU networks, the
TCPX NCCL plugin installer and the NRI device injector), and what each setting is for: cluster/README.md,
"Network and placement". Needs PyYAML only. tests/cluster/test_fabric.py validates every rendering against the
KubeRay CRDs.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

RAY_KINDS = ("RayCluster", "RayJob", "RayService")

# AWS: p5.48xlarge has 32 EFA devices; the EFA device plugin exposes them as this extended resource.
EFA_RESOURCE = "vpc.amazonaws.com/efa"
EFA_DEVICES = "32"
EFA_ENV = {
    "FI_PROVIDER": "efa",  # libfabric's EFA provider, for the aws-ofi-nccl plugin (in the image: cluster/Dockerfile)
    "FI_EFA_USE_DEVICE_RDMA": "1",  # GPUDirect RDMA: NCCL moves GPU memory straight to the EFA device
}

# GCP: a3-highgpu-8g has 4 GPU NICs (eth1..eth4) beside eth0. The network names are the GKE Network objects the
# cluster's multi-networking set-up created (README); change GPU_NETWORKS if yours are named otherwise.
GPU_NETWORKS = ["vpc1", "vpc2", "vpc3", "vpc4"]
TCPX_DAEMON_IMAGE = "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/tcpgpudmarxd-dev:v2.0.12"
TCPX_SOCKET = "/run/tcpx"
NVIDIA_LIB = "/usr/local/nvidia/lib64"  # where GKE's TCPX installer puts the NCCL plugin (and its NCCL)
# NCCL settings for the TCPX plugin, as GKE's TCPX guide gives them for a3-highgpu-8g. Its per-NIC CPU bindings
# (NCCL_GPUDIRECTTCPX_TX/RX_BINDINGS) are tuning: add them from the guide's current version (README).
TCPX_ENV = {
    "LD_LIBRARY_PATH": NVIDIA_LIB,
    "NCCL_SOCKET_IFNAME": "eth0",  # NCCL's bootstrap and control traffic
    "NCCL_GPUDIRECTTCPX_CTRL_DEV": "eth0",
    "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME": "eth1,eth2,eth3,eth4",  # the data path: the GPU NICs
    "NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX": TCPX_SOCKET,  # the receive-datapath daemon's socket
    "NCCL_CROSS_NIC": "0",
    "NCCL_ALGO": "Ring",
    "NCCL_PROTO": "Simple",
    "NCCL_NSOCKS_PERTHREAD": "4",
    "NCCL_SOCKET_NTHREADS": "1",
    "NCCL_NET_GDR_LEVEL": "PIX",
    "NCCL_P2P_PXN_LEVEL": "0",
    "NCCL_DYNAMIC_CHUNK_SIZE": "524288",
    "NCCL_P2P_NET_CHUNKSIZE": "524288",
    "NCCL_P2P_PCI_CHUNKSIZE": "524288",
    "NCCL_P2P_NVL_CHUNKSIZE": "1048576",
}


def ray_cluster_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc.get("kind") == "RayCluster":
        yield spec
    elif doc.get("kind") == "RayJob" and "rayClusterSpec" in spec:
        yield spec["rayClusterSpec"]
    elif doc.get("kind") == "RayService":
        yield spec["rayClusterConfig"]


def gpu_pod_templates(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in spec.get("workerGroupSpecs", []):
        if any(_gpus(c) for c in group["template"]["spec"]["containers"]):
            yield group["template"]


def _gpus(container: dict[str, Any]) -> int:
    return int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def _ray_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["containers"] if _gpus(c)]
    return container


def _add_env(container: dict[str, Any], env: dict[str, str]) -> None:
    # A new list: in the manifests one `env:` list is shared (a YAML anchor) by the head and the workers.
    kept = [e for e in container.get("env", []) if e["name"] not in env]
    container["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]


def add_efa(template: dict[str, Any]) -> None:
    pod = template["spec"]
    pod["nodeSelector"] = {**pod.get("nodeSelector", {}), "node.kubernetes.io/instance-type": "p5.48xlarge"}
    container = _ray_container(pod)
    resources = container["resources"]
    for kind in ("requests", "limits"):
        resources[kind] = {**resources.get(kind, {}), EFA_RESOURCE: EFA_DEVICES}
    _add_env(container, EFA_ENV)


def add_tcpx(template: dict[str, Any]) -> None:
    metadata = template.setdefault("metadata", {})
    interfaces = [{"interfaceName": "eth0", "network": "default"}] + [
        {"interfaceName": f"eth{i}", "network": name} for i, name in enumerate(GPU_NETWORKS, start=1)
    ]
    devices = [f"/dev/nvidia{i}" for i in range(8)] + ["/dev/nvidiactl", "/dev/nvidia-uvm"]
    metadata["annotations"] = {
        **metadata.get("annotations", {}),
        # GKE multi-networking: eth0 stays the pod network, eth1..eth4 attach the GPU NICs' networks.
        "networking.gke.io/default-interface": "eth0",
        "networking.gke.io/interfaces": json.dumps(interfaces),
        # The NRI device injector gives the TCPX daemon the GPUs without a GPU request of its own.
        "devices.gke.io/container.tcpx-daemon": "".join(f"- path: {d}\n" for d in devices),
    }
    pod = template["spec"]
    pod["nodeSelector"] = {
        **pod.get("nodeSelector", {}),
        "node.kubernetes.io/instance-type": "a3-highgpu-8g",
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
    }
    pod["volumes"] = [
        *pod.get("volumes", []),
        {"name": "tcpx-libraries", "hostPath": {"path": "/home/kubernetes/bin/nvidia/lib64"}},
        {"name": "tcpx-socket", "hostPath": {"path": TCPX_SOCKET}},
        {"name": "tcpx-sys", "hostPath": {"path": "/sys"}},
        {"name": "tcpx-proc-sys", "hostPath": {"path": "/proc/sys"}},
    ]
    container = _ray_container(pod)
    container["volumeMounts"] = [
        *container.get("volumeMounts", []),
        {"name": "tcpx-libraries", "mountPath": NVIDIA_LIB},
        {"name": "tcpx-socket", "mountPath": TCPX_SOCKET},
    ]
    security = container.setdefault("securityContext", {})
    capabilities = security.setdefault("capabilities", {})
    capabilities["add"] = sorted({*capabilities.get("add", []), "IPC_LOCK"})
    _add_env(container, TCPX_ENV)
    # The receive-datapath manager: moves incoming data from the GPU NICs into GPU memory for the NCCL plugin.
    daemon = {
        "name": "tcpx-daemon",
        "image": TCPX_DAEMON_IMAGE,
        "command": [
            "/tcpgpudmarxd/build/app/tcpgpudmarxd",
            "--gpu_nic_preset",
            "a3vm",
            "--gpu_shmem_type",
            "fd",
            "--uds_path",
            TCPX_SOCKET,
            "--setup_param",
            "--verbose 128 2 0",
        ],
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
        "env": [{"name": "LD_LIBRARY_PATH", "value": NVIDIA_LIB}],
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
            "limits": {"memory": "4Gi", "ephemeral-storage": "2Gi"},
        },
        "volumeMounts": [
            {"name": "tcpx-libraries", "mountPath": NVIDIA_LIB},
            {"name": "tcpx-socket", "mountPath": TCPX_SOCKET},
            {"name": "tcpx-sys", "mountPath": "/hostsysfs"},
            {"name": "tcpx-proc-sys", "mountPath": "/hostprocsysfs"},
        ],
    }
    pod["containers"] = [*pod["containers"], daemon]


FABRICS: dict[str, Callable[[dict[str, Any]], None]] = {"efa": add_efa, "tcpx": add_tcpx}


def render(docs: list[dict[str, Any] | None], fabric: str) -> list[dict[str, Any]]:
    """Copies of `docs` with `fabric` added to every GPU worker pod of the Ray kinds; other documents unchanged."""
    add = FABRICS[fabric]
    out = []
    for doc in docs:
        if doc is None:
            continue
        doc = copy.deepcopy(doc)
        if doc.get("kind") in RAY_KINDS:
            for spec in ray_cluster_specs(doc):
                for template in gpu_pod_templates(spec):
                    add(template)
        out.append(doc)
    return out


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fabric", choices=sorted(FABRICS))
    parser.add_argument("manifests", nargs="+", type=Path)
    args = parser.parse_args(argv)
    docs = [doc for path in args.manifests for doc in yaml.safe_load_all(path.read_text())]
    yaml.dump_all(render(docs, args.fabric), sys.stdout, Dumper=_NoAliases, sort_keys=False, width=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
