"""Offline, strict validation of Kubernetes custom resources against their CRDs' openAPIV3Schema.

The apiserver prunes unknown fields of a custom resource silently, so a misspelt key (`minReplica`,
`rayStartParam`) applies cleanly and is simply ignored: the cluster comes up wrong. `kubectl --validate=strict`
rejects it instead; this does the same offline: fill the schema's defaults first (as the apiserver does before
it checks `required`), then validate with every object that lists `properties` closed to other keys, unless
the schema says `x-kubernetes-preserve-unknown-fields` or gives its own `additionalProperties`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}

# The ObjectMeta fields a manifest may set (the CRD schemas leave top-level metadata open).
OBJECT_META_FIELDS = {"name", "generateName", "namespace", "labels", "annotations", "finalizers", "ownerReferences"}


@cache
def crd_schema(crd_dir: Path, kind: str, version: str = "v1") -> dict[str, Any]:
    """The CRD's schema (cached: the files are large; callers must not modify it)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((crd_dir / CRD_FILES[kind]).read_text(), Loader=loader)
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return entry["schema"]["openAPIV3Schema"]
    raise KeyError(f"{kind} CRD has no version {version}")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI v3 structural schema, closed to unknown keys and with `nullable` spelt as JSON Schema."""
    schema = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                close(item)
            return
        if not isinstance(node, dict):
            return
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for key in ("properties", "patternProperties", "definitions"):
            for child in node.get(key, {}).values():
                close(child)
        for key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            if key in node:
                close(node[key])

    close(schema)
    return schema


def fill_defaults(instance: Any, schema: dict[str, Any]) -> Any:
    """Apply the schema's `default`s to absent fields of objects that are present, recursively (in place)."""
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                fill_defaults(instance[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in instance.items():
                if key not in schema.get("properties", {}):
                    fill_defaults(value, extra)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            fill_defaults(item, schema["items"])
    return instance


@cache
def _validator(crd_dir: Path, kind: str) -> jsonschema.protocols.Validator:
    schema = strict(crd_schema(crd_dir, kind))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def validation_errors(manifest: dict[str, Any], crd_dir: Path) -> list[str]:
    """Every problem with a RayCluster / RayJob / RayService manifest, as `path: message` lines (empty: valid)."""
    kind = manifest.get("kind")
    if kind not in CRD_FILES:
        return [f"kind {kind!r} is not one of {sorted(CRD_FILES)}"]
    problems = []
    if manifest.get("apiVersion") != "ray.io/v1":
        problems.append(f"apiVersion: {manifest.get('apiVersion')!r}, expected 'ray.io/v1'")
    meta = manifest.get("metadata") or {}
    if not meta.get("name"):
        problems.append("metadata.name: missing")
    problems += [f"metadata.{k}: unknown ObjectMeta field" for k in sorted(set(meta) - OBJECT_META_FIELDS)]
    instance = fill_defaults(copy.deepcopy(manifest), crd_schema(crd_dir, kind))
    for error in sorted(_validator(crd_dir, kind).iter_errors(instance), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{path}: {error.message}")
    return problems


def ray_cluster_specs(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The RayCluster spec inside a RayCluster, RayJob or RayService, with where it sits."""
    kind, spec = manifest.get("kind"), manifest.get("spec") or {}
    if kind == "RayCluster":
        yield "spec", spec
    elif kind == "RayJob" and "rayClusterSpec" in spec:
        yield "spec.rayClusterSpec", spec["rayClusterSpec"]
    elif kind == "RayService":
        yield "spec.rayClusterConfig", spec["rayClusterConfig"]


def pod_templates(cluster_spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "head", cluster_spec["headGroupSpec"]["template"]
    for group in cluster_spec.get("workerGroupSpecs", []):
        yield group["groupName"], group["template"]


# ----------------------------------------------------------------------------------------------- the manifests

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
CRD_DIR = REPO.parent / "shared" / "data" / "kuberay-crds"


@cache
def manifest_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every YAML document under cluster/ as (`path#index`, document), except the `ray up` configs
    (tests/cluster/test_ray_up.py). Shared by the test modules: a test that changes one must copy it first."""
    docs = []
    paths = sorted(p for p in CLUSTER.rglob("*.y*ml") if (CLUSTER / "ray-up") not in p.parents)
    for path in paths:
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                docs.append((f"{path.relative_to(REPO)}#{i}", doc))
    return tuple(docs)


def ray_documents() -> list[tuple[str, dict[str, Any]]]:
    """The RayCluster, RayJob and RayService documents."""
    return [(name, doc) for name, doc in manifest_documents() if doc.get("kind") in CRD_FILES]


def is_gpu_pod(template: dict[str, Any]) -> bool:
    return any(
        int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) for c in template["spec"]["containers"]
    )
