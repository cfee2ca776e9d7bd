"""What `limo plan` takes on faith: survival fractions, response lengths and throughputs, each printed with the
plan and overridable (`limo plan --assume strong_survival=0.05`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from limo_ray.errors import LimoError

__all__ = ["DEFAULT_POOL_SIZE", "Assumptions"]

# The limo-32b preset names no pool files (users bring them): plan for a pool of this many problems.
DEFAULT_POOL_SIZE = 100_000


@dataclass(frozen=True)
class Assumptions:
    """Every number the plan takes on faith. Printed with the plan; override any of them."""

    # Fraction of problems each step keeps.
    dedup_survival: float = 0.70
    decontamination_survival: float = 0.99
    weak_unsolved_after_first_round: float = 0.35
    weak_survival: float = 0.20  # unsolved after every weak attempt: the "hard" problems
    strong_early_stop: float = 0.60  # pass the band's top within the strong filter's first round
    strong_survival: float = 0.10  # solved within [keep_min, keep_max] of `samples`
    balance_survival: float = 0.90
    chain_correct_rate: float = 0.60  # per chain: its final answer is right
    # Expected response length (tokens) per stage; `response_tokens` overrides per model name.
    weak_response_tokens: int = 600
    strong_response_tokens: int = 12_000
    chain_response_tokens: int = 10_000
    eval_response_tokens: int = 8_000
    prompt_tokens: int = 200
    response_tokens: Mapping[str, int] = field(default_factory=dict)
    # Decode throughput per GPU (tokens/s, vLLM, long reasoning chains, H100-class) by model size:
    # small < 10B parameters <= medium < 100B <= large.
    decode_tokens_per_s_per_gpu: Mapping[str, float] = field(
        default_factory=lambda: {"small": 5000.0, "medium": 1000.0, "large": 400.0}
    )
    cpu_decode_tokens_per_s: float = 10_000.0  # one CPU engine decoding a toy model
    # Training throughput: MFU x peak bf16 FLOP/s, or a stated tokens/s per GPU.
    train_mfu: float = 0.35
    gpu_bf16_tflops: float | None = None  # None: from the GPU type (H100 if unknown)
    train_tokens_per_s_per_gpu: float | None = None
    cpu_train_tokens_per_s: float = 10_000.0  # the toy student on CPU, all workers together
    # Engine memory beyond weights and KV cache: activations for a batch, CUDA graphs, sampler (GiB per GPU).
    engine_overhead_gib: float = 4.0
    gpu_memory_gib: float | None = None  # None: from cluster.gpu_type
    # How the training loop computes the loss (limo_ray.train.memory): "fused" = lm_head + cross-entropy per
    # 1,024-token chunk; "chunked" = whole bf16 logits, cross-entropy in 8,192-token chunks; "hf" = stock.
    train_loss: Literal["fused", "chunked", "hf"] = "fused"
    # Evaluated checkpoints: the student before and after fine-tuning.
    eval_checkpoints: int = 2
    # Items assumed for a benchmark whose registry entry does not say (e.g. the toy benchmark).
    benchmark_items_default: int = 300

    def __post_init__(self) -> None:
        for name in (
            "dedup_survival",
            "decontamination_survival",
            "weak_unsolved_after_first_round",
            "weak_survival",
            "strong_early_stop",
            "strong_survival",
            "balance_survival",
            "chain_correct_rate",
            "train_mfu",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise LimoError(f"plan assumption {name} must be a fraction in [0, 1], got {value}")
        if self.weak_survival > self.weak_unsolved_after_first_round:
            raise LimoError(
                f"plan assumptions: weak_survival ({self.weak_survival}) cannot exceed "
                f"weak_unsolved_after_first_round ({self.weak_unsolved_after_first_round})"
            )
