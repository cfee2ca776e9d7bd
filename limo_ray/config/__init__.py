"""One typed, strict config tree per run, loaded from YAML presets in `limo_ray/configs/` plus `--set` overrides.

Strict means: an unknown key is an error that names the key and the file it came from, and a value of the
wrong type is an error (no silent coercion of "4" to 4). Configs are frozen once loaded: a stage can trust
that what it read is what was written to the run folder's `config.yaml`.

The tree: `base` (the strict base model and the parts sections share), `stages` (curate, train, serve, eval),
`ablate`, `run_config` (`RunConfig` and the sections every part reads); `loading` reads YAML into it. Every name
is importable from `limo_ray.config`.
"""

from limo_ray.config.ablate import (
    AblateConfig,
    BackboneStudyConfig,
    DifficultyBin,
    DifficultyStudyConfig,
    QualityStudyConfig,
    SelectionStudyConfig,
    SizeStudyConfig,
)
from limo_ray.config.base import LIMO_SYSTEM_PROMPT, ModelConfig, PromptConfig, SamplingConfig, StrictModel
from limo_ray.config.loading import (
    PRESET_DIR,
    deep_merge,
    load_config,
    parse_overrides,
    parse_yaml,
    preset_names,
    resolve_config_path,
    validate_config,
)
from limo_ray.config.run_config import BenchmarksConfig, ClusterConfig, NodeResources, RunConfig, ToyConfig
from limo_ray.config.stages import (
    BalanceConfig,
    ChainsConfig,
    CurateConfig,
    DecodingConfig,
    DecontaminateConfig,
    DedupConfig,
    EvalConfig,
    FieldMapConfig,
    PoolConfig,
    QualityConfig,
    QualityWeights,
    SelectConfig,
    ServeConfig,
    ServeReplicaConfig,
    StrongFilterConfig,
    TrainConfig,
    WeakFilterConfig,
)

__all__ = [
    "LIMO_SYSTEM_PROMPT",
    "PRESET_DIR",
    "AblateConfig",
    "BackboneStudyConfig",
    "BalanceConfig",
    "BenchmarksConfig",
    "ChainsConfig",
    "ClusterConfig",
    "CurateConfig",
    "DecodingConfig",
    "DecontaminateConfig",
    "DedupConfig",
    "DifficultyBin",
    "DifficultyStudyConfig",
    "EvalConfig",
    "FieldMapConfig",
    "ModelConfig",
    "NodeResources",
    "PoolConfig",
    "PromptConfig",
    "QualityConfig",
    "QualityStudyConfig",
    "QualityWeights",
    "RunConfig",
    "SamplingConfig",
    "SelectConfig",
    "SelectionStudyConfig",
    "ServeConfig",
    "ServeReplicaConfig",
    "SizeStudyConfig",
    "StrictModel",
    "StrongFilterConfig",
    "ToyConfig",
    "TrainConfig",
    "WeakFilterConfig",
    "deep_merge",
    "load_config",
    "parse_overrides",
    "parse_yaml",
    "preset_names",
    "resolve_config_path",
    "validate_config",
]
