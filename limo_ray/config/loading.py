"""Reading a run config: a preset or YAML file (following `extends`), `--set` overrides, and strict validation
whose errors name the key and where it was set (the file or `--set`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from limo_ray.config.run_config import RunConfig
from limo_ray.errors import LimoError

PRESET_DIR = Path(__file__).parent.parent / "configs"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader that reads `5e-6` as a float (YAML 1.2), not the string PyYAML's 1.1 rules give."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        raise LimoError(f"{origin}: not valid YAML: {' '.join(str(exc).split())}") from exc


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str) -> Path:
    """A preset name (`tiny`, `limo-32b`) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise LimoError(f"config file {name_or_path} does not exist")
        return path
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    raise LimoError(f"unknown config {name_or_path!r}: not a file, and not a preset ({', '.join(preset_names())})")


def _read_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, following `extends: <preset or path>` (deep merge, this file wins)."""
    if path.resolve() in seen:
        raise LimoError(f"{path}: `extends` loops back to itself")
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LimoError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise LimoError(f"{path}: `extends` must name a preset or a file")
    base_path = resolve_config_path(
        base_name if Path(base_name).is_absolute() or base_name in preset_names() else str(path.parent / base_name)
    )
    return deep_merge(_read_tree(base_path, (*seen, path.resolve())), data)


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """`a.b.c=value` strings -> a nested dict; values are YAML (so `4`, `0.6`, `5e-6`, `[1, 3]`, `null`)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
            raise LimoError(f"--set {item!r}: expected key.path=value")
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise LimoError(f"--set {item!r}: {part} was already set to a value")
        node[parts[-1]] = parse_yaml(raw, f"--set {key}")
    return tree


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a preset or YAML file, apply `--set` overrides, validate strictly."""
    path = resolve_config_path(name_or_path)
    tree = _read_tree(path)
    override_tree = parse_overrides(overrides)
    return validate_config(deep_merge(tree, override_tree), origin=str(path), override_tree=override_tree)


def validate_config(tree: Mapping[str, Any], origin: str, override_tree: Mapping[str, Any] | None = None) -> RunConfig:
    try:
        return RunConfig.model_validate(dict(tree))
    except ValidationError as exc:
        raise LimoError(_explain(exc, origin, override_tree or {})) from None


def _explain(exc: ValidationError, origin: str, override_tree: Mapping[str, Any]) -> str:
    """One line per problem, each naming the key and where it was set (file or --set)."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        where = "--set" if _in_tree(override_tree, err["loc"]) else origin
        if err["type"] == "extra_forbidden":
            hint = _did_you_mean(loc)
            lines.append(f"{where}: unknown key `{key}`{hint}")
        elif err["type"] == "missing":
            lines.append(f"{where}: missing required key `{key}`")
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: `{key}` = {shown}: {message}")
    return "; ".join(lines)


def _in_tree(tree: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = tree
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return bool(loc)


def _did_you_mean(loc: list[str]) -> str:
    """Suggest the closest known key at the same level, walking the model tree along `loc`."""
    model: Any = RunConfig
    parts = iter(loc[:-1])
    for part in parts:
        field = model.model_fields.get(part)
        if field is None:
            return ""
        if get_origin(field.annotation) is dict:
            next(parts, None)  # skip the dict's own key, e.g. the model name under `models:`
        model = _model_type(field.annotation)
        if model is None:
            return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _model_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_type(arg)
        if found is not None:
            return found
    return None
