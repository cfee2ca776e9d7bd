"""Model architectures as numbers: parameter counts match the model cards, and a config.json reads the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from limo_ray.architectures import KNOWN_ARCHS, arch_for, qwen2_arch_from_config
from limo_ray.errors import LimoError
from tests.fixtures import QWEN32_CONFIG

QWEN32 = KNOWN_ARCHS["qwen/qwen2.5-32b-instruct"]


@pytest.mark.parametrize(
    ("name", "billions"),
    [("Qwen/Qwen2.5-32B-Instruct", 32.76), ("Qwen/Qwen2.5-7B-Instruct", 7.62), ("Qwen/Qwen2.5-1.5B-Instruct", 1.54)],
)
def test_parameter_counts_match_the_model_cards(name: str, billions: float) -> None:
    arch = arch_for(name)
    assert arch is not None
    assert arch.num_params() / 1e9 == pytest.approx(billions, abs=0.01)


def test_arch_from_config_json(tmp_path: Path) -> None:
    assert qwen2_arch_from_config(QWEN32_CONFIG).num_params() == QWEN32.num_params()
    (tmp_path / "config.json").write_text(json.dumps(QWEN32_CONFIG))
    arch = arch_for(str(tmp_path))
    assert arch is not None and arch.num_params() == QWEN32.num_params()
    with pytest.raises(LimoError, match="mixture of experts"):
        qwen2_arch_from_config({**QWEN32_CONFIG, "model_type": "qwen2_moe"})
    with pytest.raises(LimoError, match="intermediate_size"):
        qwen2_arch_from_config({k: v for k, v in QWEN32_CONFIG.items() if k != "intermediate_size"})
    assert arch_for("someone/unknown-model") is None
