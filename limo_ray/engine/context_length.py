"""A model's context limit, read before any engine starts: `max_model_len` past it is refused here, in one line.

vLLM refuses to start an engine whose `max_model_len` exceeds the model's `max_position_embeddings` (unless RoPE
scaling stretches it), but only once the job has reached that stage on the cluster, after hours of curation,
or at eval time after training. The limit comes from the model's `config.json`: a local folder, the Hugging
Face cache (never a download), or, for hub models not cached here, the table below, copied from each
repository's config.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.errors import LimoError

# max_position_embeddings of the hub models the presets name, from their config.json (lower-case names).
KNOWN_MAX_POSITIONS: dict[str, int] = {
    "qwen/qwen2.5-32b-instruct": 32768,
    "qwen/qwen2.5-7b-instruct": 32768,
    "qwen/qwen2.5-1.5b-instruct": 32768,
    "qwen/qwen2.5-math-7b-instruct": 4096,
    "qwen/qwq-32b-preview": 32768,
    "qwen/qwq-32b": 40960,
    "deepseek-ai/deepseek-r1-distill-qwen-32b": 131072,
    "deepseek-ai/deepseek-r1": 163840,
}


@dataclass(frozen=True)
class ContextLimit:
    max_positions: int
    rope_factor: float | None  # RoPE scaling in the model's config.json, if any
    source: str  # where the numbers were read

    def allowed(self, rope_override: Mapping[str, Any] | None) -> int:
        """The longest context an engine may ask for, with the RoPE scaling configured (file or override)."""
        factor = _factor(rope_override) if rope_override else self.rope_factor
        return int(self.max_positions * factor) if factor else self.max_positions


def _factor(rope: Mapping[str, Any]) -> float | None:
    factor = rope.get("factor")
    return float(factor) if isinstance(factor, int | float) and factor > 1 else None


def read_model_config(model: str, revision: str | None = None) -> tuple[dict[str, Any], str] | None:
    """The model's config.json and where it was found: a local folder, else the HF cache; None if neither."""
    folder = Path(model).expanduser()
    if "://" not in model and (folder / "config.json").is_file():
        path = folder / "config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except Exception:  # not a repo id (a path that does not exist, a URI): nothing cached
            cached = None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except (OSError, ValueError) as exc:
        raise LimoError(f"cannot read the config of model {model}: {path}: {exc}") from None


def context_limit(model: str, revision: str | None = None) -> ContextLimit | None:
    """The model's limit from its config.json (local or cached) or the known table; None if unknown."""
    found = read_model_config(model, revision)
    if found is not None:
        config, source = found
        positions = config.get("max_position_embeddings")
        if not isinstance(positions, int):
            return None
        rope = config.get("rope_scaling") or {}
        return ContextLimit(positions, _factor(rope) if isinstance(rope, Mapping) else None, source)
    known = KNOWN_MAX_POSITIONS.get(model.lower().rstrip("/"))
    return ContextLimit(known, None, "limo_ray.engine.context_length.KNOWN_MAX_POSITIONS") if known else None


def rope_override(engine_kwargs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """RoPE scaling configured for the engine (vLLM's `hf_overrides` or `rope_scaling` engine kwargs)."""
    overrides = engine_kwargs.get("hf_overrides")
    if isinstance(overrides, Mapping):
        for key in ("rope_scaling", "rope_parameters"):
            if isinstance(overrides.get(key), Mapping):
                return overrides[key]
    rope = engine_kwargs.get("rope_scaling")
    return rope if isinstance(rope, Mapping) else None


def check_context_length(
    name: str, model: str, max_model_len: int, engine_kwargs: Mapping[str, Any], revision: str | None = None
) -> None:
    """Refuse `max_model_len` past the model's limit (stretched by RoPE scaling when one is configured)."""
    limit = context_limit(model, revision)
    if limit is None:
        return
    allowed = limit.allowed(rope_override(engine_kwargs))
    if max_model_len > allowed:
        scaled = " with its RoPE scaling" if allowed != limit.max_positions else ""
        raise LimoError(
            f"model {name!r} ({model}): max_model_len {max_model_len:,} exceeds its context limit of {allowed:,} "
            f"tokens{scaled} (max_position_embeddings {limit.max_positions:,}, from {limit.source}); lower "
            f"models.{name}.max_model_len, or configure RoPE scaling in models.{name}.engine_kwargs.hf_overrides"
        )
