"""The run config: strict, typed, presets that say what they are, overrides that are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from limo_ray.benchmarks import BenchmarkRegistry
from limo_ray.config import LIMO_SYSTEM_PROMPT, load_config, parse_overrides, preset_names
from limo_ray.errors import LimoError


def test_presets_tiny_and_limo_32b_load() -> None:
    assert {"tiny", "limo-32b"} <= set(preset_names())
    for name in ("tiny", "limo-32b"):
        assert load_config(name).name == name


def test_limo_32b_preset_states_the_papers_recipe() -> None:
    cfg = load_config("limo-32b")
    assert cfg.models[cfg.curate.weak.model].path == "Qwen/Qwen2.5-Math-7B-Instruct"
    assert (cfg.curate.weak.attempts, cfg.curate.weak.rounds) == (4, [1, 3])
    assert cfg.models[cfg.curate.strong.model].path == "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"
    assert (cfg.curate.strong.samples, cfg.curate.strong.keep_min, cfg.curate.strong.keep_max) == (32, 1, 3)
    assert cfg.curate.decontaminate.ngram_sizes == [8, 13]
    assert {cfg.models[m].path for m in cfg.curate.chains.models} == {
        "deepseek-ai/DeepSeek-R1",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
        "Qwen/QwQ-32B-Preview",
    }
    w = cfg.curate.quality.weights
    assert (w.length, w.verification, w.tentative, w.connectives) == (0.30, 0.20, 0.25, 0.25)
    assert cfg.curate.select.size == 817
    t = cfg.train
    assert cfg.models[t.model].path == "Qwen/Qwen2.5-32B-Instruct"
    assert (t.zero_stage, t.attention, t.max_seq_len, t.learning_rate, t.lr_scheduler) == (
        3,
        "flash_attention_2",
        16384,
        5e-6,
        "cosine",
    )
    assert (t.warmup_ratio, t.epochs, t.micro_batch_size, t.precision) == (0.0, 15, 1, "bf16")
    assert (cfg.cluster.num_nodes, cfg.cluster.gpus_per_node, t.num_workers) == (2, 8, 16)
    assert cfg.prompt.system == LIMO_SYSTEM_PROMPT
    assert cfg.eval.max_tokens == 32768
    assert set(cfg.eval.benchmarks) == {
        "aime24", "math500", "amc23", "olympiadbench", "chmath", "gaokao", "kaoyan", "gradeschool", "minerva", "gpqa",
    }  # fmt: skip


def test_limo_32b_decoding_matches_the_registrys_paper_decoding() -> None:
    cfg = load_config("limo-32b")
    registry = BenchmarkRegistry.from_files()
    for name in cfg.eval.benchmarks:
        assert registry.decoding_for(name, cfg.eval) == registry.get(name).decoding, name
    assert {n for n in cfg.eval.benchmarks if registry.get(n).decoding.samples == 4} == {"aime24", "amc23", "chmath"}


def test_tiny_preset_runs_on_two_cpus() -> None:
    cfg = load_config("tiny")
    assert cfg.train.use_gpu is False and cfg.train.num_workers == 2
    assert all(m.path.startswith("toy:") for m in cfg.models.values())
    assert all(m.max_model_len == 512 for m in cfg.models.values())


def test_misspelt_key_is_rejected_naming_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("extends: tiny\ncurate:\n  weak:\n    atempts: 3\n")
    with pytest.raises(LimoError) as err:
        load_config(str(path))
    assert "curate.weak.atempts" in str(err.value)
    assert str(path) in str(err.value)
    assert "did you mean `attempts`" in str(err.value)


def test_wrong_type_is_rejected_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("extends: tiny\ntrain:\n  epochs: '3'\n")
    with pytest.raises(LimoError, match=r"train\.epochs"):
        load_config(str(path))


def test_unknown_key_under_a_named_model_suggests_the_field() -> None:
    with pytest.raises(LimoError, match=r"models\.weak\.max_len.*did you mean `max_model_len`"):
        load_config("tiny", ["models.weak.max_len=512"])


def test_quality_judge_model_is_no_longer_a_key(tmp_path: Path) -> None:
    """The LLM-judge quality score never existed: a config that still sets it fails like any unknown key."""
    path = tmp_path / "mine.yaml"
    path.write_text("extends: tiny\ncurate:\n  quality:\n    judge_model: strong\n")
    with pytest.raises(LimoError) as err:
        load_config(str(path))
    assert str(err.value) == f"{path}: unknown key `curate.quality.judge_model`"
    with pytest.raises(LimoError, match=r"unknown key `curate\.quality\.judge_model`"):
        load_config("tiny", ["curate.quality.judge_model=strong"])


def test_set_overrides_are_type_checked() -> None:
    cfg = load_config("tiny", ["train.epochs=5", "train.learning_rate=5e-6", "curate.weak.rounds=[2, 2]"])
    assert (cfg.train.epochs, cfg.train.learning_rate, cfg.curate.weak.rounds) == (5, 5e-6, [2, 2])
    with pytest.raises(LimoError, match=r"--set: `train\.epochs` = 'three'"):
        load_config("tiny", ["train.epochs=three"])


def test_cross_field_rules_are_checked() -> None:
    with pytest.raises(LimoError, match="add up to 4"):
        load_config("tiny", ["curate.weak.rounds=[1, 1]"])
    with pytest.raises(LimoError, match=r"keep_min <= keep_max <= samples"):
        load_config("tiny", ["curate.strong.keep_max=20"])
    with pytest.raises(LimoError, match="not under `models:`"):
        load_config("tiny", ["train.model=nobody"])
    with pytest.raises(LimoError, match="add up to 1"):
        load_config("tiny", ["curate.quality.weights.length=0.5"])


def test_bad_override_syntax_and_unknown_preset() -> None:
    with pytest.raises(LimoError, match=r"expected key\.path=value"):
        parse_overrides(["train.epochs"])
    with pytest.raises(LimoError, match="unknown config 'tinyy'"):
        load_config("tinyy")


def test_config_is_frozen_and_round_trips_through_yaml(tmp_path: Path) -> None:
    cfg = load_config("limo-32b")
    with pytest.raises(Exception, match="frozen"):
        cfg.train.epochs = 1  # type: ignore[misc]
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(str(path))
    assert again == cfg and again.content_hash() == cfg.content_hash()
    assert yaml.safe_load(path.read_text())["train"]["learning_rate"] == 5e-6


def test_secrets_are_named_by_environment_variable_only() -> None:
    """No config field can hold a secret itself: key/token/secret settings name an environment variable."""
    from pydantic import BaseModel

    from limo_ray.config import RunConfig

    def walk(model: type[BaseModel], prefix: str = "") -> list[str]:
        names = []
        for name, field in model.model_fields.items():
            names.append(prefix + name)
            for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    names += walk(arg, f"{prefix}{name}.")
        return names

    sensitive = [
        n for n in walk(RunConfig) if any(w in n.rsplit(".", 1)[-1] for w in ("key", "token", "secret", "password"))
    ]
    sensitive = [n for n in sensitive if not n.endswith(("tokenizer", "_tokens"))]  # token counts, not secrets
    assert sensitive == ["serve.api_key_env", "eval.api_key_env"]
    assert load_config("limo-32b").serve.api_key_env == "LIMO_API_KEY"
