"""The sections each stage reads: `curate:` (one block per curation stage), `train:`, `serve:` and `eval:`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from limo_ray.config.base import SamplingConfig, StrictModel

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
