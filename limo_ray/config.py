"""One typed, strict config tree per run, loaded from YAML presets in `limo_ray/configs/` plus `--set` overrides.

Strict means: an unknown key is an error that names the key and the file it came from, and a value of the
wrong type is an error (no silent coercion of "4" to 4). Configs are frozen once loaded: a stage can trust
that what it read is what was written to the run folder's `config.yaml`.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from limo_ray.errors import LimoError

PRESET_DIR = Path(__file__).parent / "configs"

# The paper's system prompt, for training and evaluation alike.
LIMO_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ----------------------------------------------------------------------------------------------- shared parts


class ModelConfig(StrictModel):
    """A model an engine can load: a local HF folder, a hub name, or `toy:<name>` for the built-in toy world."""

    path: str
    tokenizer: str | None = None
    revision: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "bfloat16"
    max_model_len: int = Field(gt=0)
    tensor_parallel_size: int = Field(default=1, ge=1)
    pipeline_parallel_size: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    # Off unless a config turns it on: remote code from a hub repo runs with the cluster's credentials.
    trust_remote_code: bool = False
    # Passed through to vllm.LLM / AsyncEngineArgs; for knobs this tree does not name.
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)


class SamplingConfig(StrictModel):
    temperature: float = Field(ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(gt=0)


class PromptConfig(StrictModel):
    system: str = LIMO_SYSTEM_PROMPT
    # "model" uses the tokenizer's own chat template (Qwen's for Qwen models); anything else is a Jinja template.
    chat_template: str = "model"


# ----------------------------------------------------------------------------------------------- curate


class FieldMapConfig(StrictModel):
    problem: str | None = None
    answer: str | None = None
    solution: str | None = None
    id: str | None = None
    domain: str | None = None
    difficulty: str | None = None


class PoolConfig(StrictModel):
    sources: list[str] = Field(default_factory=list, description="files, globs or s3:// / gs:// URIs")
    format: Literal["auto", "math", "numina", "aime", "gsm8k", "olympiadbench", "gpqa", "limo", "plain"] = "auto"
    fields: FieldMapConfig = Field(default_factory=FieldMapConfig)


class DedupConfig(StrictModel):
    exact: bool = True
    near: bool = True
    minhash_threshold: float = Field(default=0.7, gt=0, le=1)
    num_perm: int = Field(default=128, gt=0)
    shingle_size: int = Field(default=5, gt=0)


class DecontaminateConfig(StrictModel):
    ngram_sizes: list[int] = Field(default_factory=lambda: [8, 13])
    # "all" = every registered benchmark whose data is present.
    benchmarks: list[str] | Literal["all"] = "all"
    # An n-gram found in more texts than this (benchmark items and pool problems together) is boilerplate
    # ("express your answer as a common fraction"), not evidence of a copied problem, and is ignored.
    max_ngram_items: int = Field(default=5, gt=0)
    # A problem overlaps a benchmark item when their shared n-grams are at least this fraction of the smaller
    # text's n-grams: a verbatim copy is 1.0; a shared turn of phrase is far below.
    min_overlap: float = Field(default=0.5, gt=0, le=1)


class WeakFilterConfig(StrictModel):
    model: str
    attempts: int = Field(default=4, gt=0)
    rounds: list[int] = Field(default_factory=lambda: [1, 3])
    sampling: SamplingConfig

    @model_validator(mode="after")
    def _rounds_cover_attempts(self) -> WeakFilterConfig:
        _check_rounds(self.rounds, self.attempts, "curate.weak")
        return self


class StrongFilterConfig(StrictModel):
    model: str
    samples: int = Field(default=32, gt=0)
    keep_min: int = Field(default=1, ge=0)
    keep_max: int = Field(default=3, ge=0)
    rounds: list[int] = Field(default_factory=lambda: [8, 8, 8, 8])
    sampling: SamplingConfig

    @model_validator(mode="after")
    def _band_fits(self) -> StrongFilterConfig:
        _check_rounds(self.rounds, self.samples, "curate.strong")
        if not self.keep_min <= self.keep_max <= self.samples:
            raise ValueError(
                f"curate.strong: need keep_min <= keep_max <= samples, got {self.keep_min}, {self.keep_max}, "
                f"{self.samples}"
            )
        return self


def _check_rounds(rounds: list[int], total: int, where: str) -> None:
    if not rounds or any(r <= 0 for r in rounds) or sum(rounds) != total:
        raise ValueError(f"{where}: rounds {rounds} must be positive and add up to {total}")


class BalanceConfig(StrictModel):
    # Target size before chain generation; None keeps every hard problem.
    size: int | None = Field(default=None, gt=0)
    cells: list[Literal["domain", "difficulty"]] = Field(default_factory=lambda: ["domain", "difficulty"])
    diversity: Literal["minhash", "none"] = "minhash"


class ChainsConfig(StrictModel):
    models: list[str]
    per_model: int = Field(gt=0)
    sampling: SamplingConfig


class QualityWeights(StrictModel):
    length: float = 0.30
    verification: float = 0.20
    tentative: float = 0.25
    connectives: float = 0.25

    @model_validator(mode="after")
    def _sum_to_one(self) -> QualityWeights:
        total = self.length + self.verification + self.tentative + self.connectives
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"curate.quality.weights must add up to 1, got {total:g}")
        return self


class QualityConfig(StrictModel):
    weights: QualityWeights = Field(default_factory=QualityWeights)
    # Words at which the length feature is full: R1-style chains run to thousands of words, toy chains to ~100.
    reference_length: int = Field(default=4000, gt=1)


class SelectConfig(StrictModel):
    size: int = Field(default=817, gt=0)


class CurateConfig(StrictModel):
    pool: PoolConfig = Field(default_factory=PoolConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    weak: WeakFilterConfig
    strong: StrongFilterConfig
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    chains: ChainsConfig
    quality: QualityConfig = Field(default_factory=QualityConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)


# ----------------------------------------------------------------------------------------------- train


class TrainConfig(StrictModel):
    model: str
    max_seq_len: int = Field(default=16384, gt=0)
    truncation: Literal["drop", "truncate"] = "drop"
    packing: bool = False
    learning_rate: float = Field(default=5.0e-6, gt=0)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    epochs: int = Field(default=15, gt=0)
    micro_batch_size: int = Field(default=1, gt=0)
    # Samples (packed rows when packing) per optimizer step, all workers together; gradient accumulation is derived:
    # global_batch_size / (micro_batch_size x num_workers), which must be whole. None = micro_batch_size x num_workers.
    global_batch_size: int | None = Field(default=None, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    precision: Literal["bf16", "fp32"] = "bf16"
    zero_stage: Literal[0, 1, 2, 3] = 3
    gradient_checkpointing: bool = True
    # "auto": FlashAttention-2 when CUDA and flash-attn are present, else sdpa.
    attention: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    cpu_offload: bool = False
    num_workers: int = Field(default=16, gt=0)
    use_gpu: bool = True
    cpus_per_worker: float = Field(default=1.0, ge=0)
    # A resumable (sharded) checkpoint at every Nth epoch end, and every N steps if set; the last step always gets one.
    checkpoint_every_epochs: int = Field(default=1, gt=0)
    checkpoint_every_steps: int | None = Field(default=None, gt=0)
    # Where Ray Train keeps resumable checkpoints: None = <run dir>/train; s3:// / gs:// / NFS on clusters.
    storage_path: str | None = None
    # Local disk each worker stages its shards and the HF export on before Ray Train uploads them (NVMe on a
    # cluster: ZeRO-3 shards of a 32B model are ~25 GB per rank). None = the system temp folder.
    scratch_dir: str | None = None
    keep_checkpoints: int = Field(default=2, gt=0)
    # Automatic restarts from the last checkpoint when a worker dies.
    max_failures: int = Field(default=0, ge=0)
    # The loss is computed in chunks of this many tokens from hidden states: full logits never exist.
    loss_chunk_tokens: int = Field(default=1024, gt=0)
    # Stop after this many optimizer steps (smoke runs); None = every epoch.
    max_steps: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_accumulation_key(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "gradient_accumulation_steps" in data:
            raise ValueError(
                "train.gradient_accumulation_steps is derived now: set train.global_batch_size (= micro_batch_size x "
                "gradient_accumulation_steps x num_workers) instead"
            )
        return data

    @model_validator(mode="after")
    def _global_batch_divides(self) -> TrainConfig:
        per_pass = self.micro_batch_size * self.num_workers
        if self.global_batch_size is not None and self.global_batch_size % per_pass:
            raise ValueError(
                f"train.global_batch_size {self.global_batch_size} is not a whole number of micro-batches on every "
                f"worker: micro_batch_size {self.micro_batch_size} x num_workers {self.num_workers} = {per_pass} "
                f"does not divide it; use a multiple of {per_pass}"
            )
        return self

    @property
    def global_batch(self) -> int:
        """Rows per optimizer step over all workers (`global_batch_size`, or one micro-batch per worker)."""
        return self.global_batch_size or self.micro_batch_size * self.num_workers

    @property
    def gradient_accumulation_steps(self) -> int:
        """Micro-batches per worker per optimizer step, derived from the global batch."""
        return self.global_batch // (self.micro_batch_size * self.num_workers)


# ----------------------------------------------------------------------------------------------- serve / eval


class ServeReplicaConfig(StrictModel):
    """How each served model's deployment scales, queues and checks keys: the part of `serve:` the Serve app
    itself takes (`limo_ray.serve.app.AppArgs` extends it), so each field is declared here once."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: int = Field(default=32, gt=0)
    max_ongoing_requests: int = Field(default=128, gt=0)
    # Past this many waiting requests a replica answers 503 with Retry-After: bounded memory under overload.
    max_queued_requests: int = Field(default=512, gt=0)
    retry_after_s: int = Field(default=1, ge=0)
    # The name of the environment variable holding the API key; the key itself never goes in a config.
    api_key_env: str | None = "LIMO_API_KEY"


class ServeConfig(ServeReplicaConfig):
    models: list[str] = Field(default_factory=list)
    # Local by default: exposing an endpoint beyond this machine must be a decision.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


class DecodingConfig(StrictModel):
    samples: int = Field(default=1, gt=0)
    temperature: float = Field(default=0.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)


class EvalConfig(StrictModel):
    benchmarks: list[str] = Field(default_factory=list)
    max_tokens: int = Field(default=32768, gt=0)
    # Per-benchmark decoding; a benchmark not listed uses its registry entry's paper decoding.
    decoding: dict[str, DecodingConfig] = Field(default_factory=dict)
    concurrency: int = Field(default=64, gt=0)
    retries: int = Field(default=5, ge=0)
    request_timeout_s: float = Field(default=3600.0, gt=0)
    # The judge for judge-graded sets: a model under `models:` (served for the run), or an external endpoint.
    judge_model: str | None = None
    judge_url: str | None = None
    # Environment variable holding the key the evaluator sends to an external endpoint.
    api_key_env: str | None = "LIMO_API_KEY"


class BenchmarksConfig(StrictModel):
    # Where benchmark files are read from (the registry's paths are relative to it); None = $LIMO_RAY_DATA.
    data_root: str | None = None
    # Extra registry YAML files: a user's own benchmarks, same schema as the built-in registry.
    registry_files: list[str] = Field(default_factory=list)
    # A file per benchmark name that replaces its registry path (your own copy of a set); the entry step also
    # writes the toy world's benchmark file here, so nothing past it sees a `toy:` path.
    paths: dict[str, str] = Field(default_factory=dict)


class ClusterConfig(StrictModel):
    # None: an embedded local Ray (never attach to a stray cluster by accident); `auto`: the cluster this node
    # belongs to (a KubeRay pod, a `ray up` head), an error if there is none; else a Ray address.
    address: str | None = None
    num_nodes: int = Field(default=1, gt=0)
    gpus_per_node: int = Field(default=0, ge=0)
    cpus_per_node: int = Field(default=2, gt=0)
    gpu_type: str | None = None
    gpu_hour_usd: float = Field(default=0.0, ge=0)
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    # How long a stage waits for its placement groups (engines, Serve replicas, the training worker group)
    # before it stops with one line naming what it lacks; an autoscaler adding a GPU node takes minutes.
    placement_timeout_s: float = Field(default=900.0, gt=0)


class ToyConfig(StrictModel):
    size: Literal["full", "test"] = "full"
    seed: int = 0


# ----------------------------------------------------------------------------------------------- ablate


class QualityStudyConfig(StrictModel):
    # Problems per arm; fewer when fewer curated problems have a correct chain at every level L1..L5.
    problems: int = Field(default=500, gt=0)
    # Chains drawn per chain model for this study (the curation's are reused, only the rest are drawn): more
    # chains per problem, more problems with all five levels. None: curate.chains.per_model.
    chains_per_model: int | None = Field(default=None, gt=0)


class DifficultyBin(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    # Where the strong filter measured a problem: its successes / attempts falls in [low, high) (1.0 included).
    solve_rate: list[float] = Field(min_length=2, max_length=2)
    # Otherwise: the number in the source's level label ("Level 3", "3").
    levels: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rate_range(self) -> DifficultyBin:
        low, high = self.solve_rate
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"ablate.difficulty bin {self.name!r}: solve_rate needs 0 <= low < high <= 1")
        return self


class DifficultyStudyConfig(StrictModel):
    problems: int = Field(default=500, gt=0)  # per arm (bin); every arm gets the same number
    # Easiest first; the last bin is the reference arm. A problem belongs to the first bin it fits.
    bins: list[DifficultyBin] = Field(
        default_factory=lambda: [
            DifficultyBin(name="simple", solve_rate=[0.5, 1.0], levels=[1, 2]),
            DifficultyBin(name="complex", solve_rate=[0.125, 0.5], levels=[3, 4]),
            DifficultyBin(name="advanced", solve_rate=[0.0, 0.125], levels=[5]),
        ]
    )

    @model_validator(mode="after")
    def _bins_disjoint(self) -> DifficultyStudyConfig:
        if len(self.bins) < 2:
            raise ValueError("ablate.difficulty.bins: a study needs two or more bins")
        names = [b.name for b in self.bins]
        if len(set(names)) != len(names):
            raise ValueError(f"ablate.difficulty.bins: names repeat ({', '.join(names)})")
        ranges = sorted(b.solve_rate for b in self.bins)
        if any(a[1] > b[0] for a, b in itertools.pairwise(ranges)):
            raise ValueError(f"ablate.difficulty.bins: solve_rate ranges overlap ({ranges})")
        levels = [level for b in self.bins for level in b.levels]
        if len(set(levels)) != len(levels):
            raise ValueError(f"ablate.difficulty.bins: a level is in two bins ({levels})")
        return self


class SizeStudyConfig(StrictModel):
    sizes: list[int] = Field(default_factory=lambda: [200, 400, 817])  # nested subsets of the curated set

    @model_validator(mode="after")
    def _sizes_rise(self) -> SizeStudyConfig:
        if len(self.sizes) < 2 or any(s <= 0 for s in self.sizes) or sorted(set(self.sizes)) != self.sizes:
            raise ValueError(f"ablate.size.sizes: two or more distinct positive sizes, smallest first ({self.sizes})")
        return self


class SelectionStudyConfig(StrictModel):
    size: int | None = Field(default=None, gt=0)  # samples per arm; None: the curated set's size


class BackboneStudyConfig(StrictModel):
    # Model names under `models:` trained on the same curated set; empty: train.model alone (not a study).
    students: list[str] = Field(default_factory=list)


class AblateConfig(StrictModel):
    # Repeats per study (seed, seed + 1, ...: the arms' sampling and the training differ); `--repeats` wins.
    repeats: int = Field(default=1, gt=0)
    quality: QualityStudyConfig = Field(default_factory=QualityStudyConfig)
    difficulty: DifficultyStudyConfig = Field(default_factory=DifficultyStudyConfig)
    size: SizeStudyConfig = Field(default_factory=SizeStudyConfig)
    selection: SelectionStudyConfig = Field(default_factory=SelectionStudyConfig)
    backbone: BackboneStudyConfig = Field(default_factory=BackboneStudyConfig)


# ----------------------------------------------------------------------------------------------- the run


class RunConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = 0
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    models: dict[str, ModelConfig]
    benchmarks: BenchmarksConfig = Field(default_factory=BenchmarksConfig)
    curate: CurateConfig
    train: TrainConfig
    serve: ServeConfig = Field(default_factory=ServeConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    toy: ToyConfig = Field(default_factory=ToyConfig)
    ablate: AblateConfig = Field(default_factory=AblateConfig)

    @model_validator(mode="after")
    def _model_names_exist(self) -> RunConfig:
        refs: list[tuple[str, str]] = [
            ("curate.weak.model", self.curate.weak.model),
            ("curate.strong.model", self.curate.strong.model),
            ("train.model", self.train.model),
        ]
        refs += [(f"curate.chains.models[{i}]", m) for i, m in enumerate(self.curate.chains.models)]
        refs += [(f"serve.models[{i}]", m) for i, m in enumerate(self.serve.models)]
        refs += [(f"ablate.backbone.students[{i}]", m) for i, m in enumerate(self.ablate.backbone.students)]
        if self.eval.judge_model is not None:
            refs.append(("eval.judge_model", self.eval.judge_model))
        for where, name in refs:
            if name not in self.models:
                raise ValueError(
                    f"{where} names model {name!r}, which is not under `models:` "
                    f"(known: {', '.join(sorted(self.models))})"
                )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=110)

    def content_hash(self) -> str:
        """A hash of every setting: two runs with the same hash were asked for the same thing."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- loading


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
