"""A `max_model_len` past the model's context limit is refused before any engine starts: read from a local
folder, from the Hugging Face cache, or from the table of the presets' hub models (CPU only, no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.config import load_config
from limo_ray.engine.context_length import check_context_length, context_limit
from limo_ray.engine.spec import engine_spec
from limo_ray.errors import LimoError
from limo_ray.plan import make_plan
from tests.engine.hf_cache import install_as_hub_model


def model_folder(root: Path, positions: int, rope: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "qwen2", "max_position_embeddings": positions}
    if rope is not None:
        config["rope_scaling"] = rope
    (root / "config.json").write_text(json.dumps(config))
    return root


def test_a_local_folder_past_its_limit_is_refused(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", 512)
    check_context_length("m", str(folder), 512, {})
    with pytest.raises(LimoError, match=r"model 'm' .*max_model_len 1,024 exceeds its context limit of 512 tokens"):
        check_context_length("m", str(folder), 1024, {})


def test_rope_scaling_in_the_config_or_the_engine_kwargs_stretches_the_limit(tmp_path: Path) -> None:
    yarn = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 512}
    scaled = model_folder(tmp_path / "scaled", 512, yarn)
    check_context_length("m", str(scaled), 2048, {})
    with pytest.raises(LimoError, match=r"context limit of 2,048 tokens with its RoPE scaling"):
        check_context_length("m", str(scaled), 4096, {})
    plain = model_folder(tmp_path / "plain", 512)
    check_context_length("m", str(plain), 2048, {"hf_overrides": {"rope_scaling": yarn}})


def test_a_hub_model_is_read_from_the_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    install_as_hub_model(model_folder(tmp_path / "src", 2048), "limo-ray-test/ctx", cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    limit = context_limit("limo-ray-test/ctx")
    assert limit is not None and limit.max_positions == 2048 and str(cache) in limit.source
    assert context_limit("limo-ray-test/not-cached") is None  # unknown: not checked, never downloaded


@pytest.mark.parametrize("model", ["qwq", "student"])
def test_the_paper_presets_32k_models_cannot_be_asked_for_40k(model: str) -> None:
    """QwQ-32B-Preview and Qwen2.5-32B-Instruct have max_position_embeddings 32,768: vLLM refuses 40,960."""
    config = load_config("limo-32b")
    assert config.models[model].max_model_len <= 32768
    engine_spec(config, model)
    wrong = load_config("limo-32b", [f"models.{model}.max_model_len=40960"])
    with pytest.raises(LimoError, match=rf"model '{model}' .*exceeds its context limit of 32,768"):
        make_plan(wrong)
