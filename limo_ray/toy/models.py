"""Tiny Qwen2 models pre-trained on CPU on toy problems with reference chains: the weak, strong and student models.

This is toy-world machinery (the real SFT of the student goes through the train stage): a plain PyTorch loop,
AdamW with warm-up and cosine decay, loss on the assistant's tokens and its closing `<|im_end|>` only, as an
instruct model is trained. Precision: bf16 autocast where the CPU has AVX-512 (1.4-1.7x faster than fp32
there), fp32 elsewhere: on an AVX2-only CPU torch emulates bf16 and a step was measured 17x slower.

Batch 16 at lr 1e-3 is what made these models learn in minutes: at lr 3e-3 (batch 16 or 64) a 0.5M model was
still at 18% greedy on levels 1-2 after 2.9M tokens, at 1e-3 it reached 78% on the same tokens; smaller
batches buy more updates per token, and the updates are what the arithmetic needs.

What a model becomes is set by its `ModelSpec`: its size and steps, and its data mix, which problems (levels)
it sees and in which chain style (quality levels). The chat a model trains on is token for token what vLLM
feeds it at inference: the tokenizer is the one reloaded from the saved folder, and the prompt is the rendered
chat template, tokenized as a string.

Training problems are drawn fresh every step from their own seed, never the pool's or the benchmark's texts.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from limo_ray.config import LIMO_SYSTEM_PROMPT
from limo_ray.records.schema import normalize_text
from limo_ray.toy.chains import reference_chain
from limo_ray.toy.problems import DOMAINS, LEVELS, make_problem
from limo_ray.toy.tokenizer import ENDOFTEXT, IM_END, render_chat

if TYPE_CHECKING:  # torch is imported where it is used: a cache hit of the toy world must not pay for it
    import torch

IGNORE_INDEX = -100
# Chunks of this many batches are drawn, sorted by length and cut into batches: little padding per batch.
_BUCKET_BATCHES = 16


@dataclass(frozen=True)
class ModelSpec:
    """One toy model: architecture, optimisation and data mix.

    level_weights: how often each level 1-5 is drawn.
    quality_by_level: for each level 1-5, the weights of chain quality L1-L5 in its training chats.
    branch_of / branch_at: start from another spec's run, taken at that fraction of its steps, and train the
        rest of the schedule with this spec's seed (a sibling model at a fraction of the cost).
    """

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    steps: int
    batch_size: int
    lr: float
    seed: int
    level_weights: tuple[float, ...]
    quality_by_level: tuple[tuple[float, ...], ...]
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    branch_of: str | None = None
    branch_at: float = 0.0

    def __post_init__(self) -> None:
        if self.hidden % self.heads or (self.hidden // self.heads) not in (32, 64, 80, 96, 128):
            # vLLM's CPU attention kernel takes only some head sizes; head size = hidden / heads in its Qwen2.
            raise ValueError(f"{self.name}: hidden {self.hidden} / heads {self.heads} is not a supported head size")
        if self.heads % self.kv_heads:
            raise ValueError(f"{self.name}: heads must be a multiple of kv_heads")
        if len(self.level_weights) != len(LEVELS) or len(self.quality_by_level) != len(LEVELS):
            raise ValueError(f"{self.name}: need one weight per level and one quality row per level")
        if (self.branch_of is None) != (self.branch_at == 0.0) or not 0.0 <= self.branch_at < 1.0:
            raise ValueError(f"{self.name}: branch_of and 0 < branch_at < 1 go together")


@dataclass
class TrainResult:
    model: Any
    seconds: float
    tokens: int
    losses: list[float] = field(default_factory=list)


def qwen2_config(spec: ModelSpec, tokenizer: Any, max_len: int = 512) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------- data


def training_chats(
    spec: ModelSpec, seed: int, exclude: Collection[str] = (), system: str = LIMO_SYSTEM_PROMPT
) -> Iterator[tuple[str, str]]:
    """An endless stream of (prompt, response) pairs in the spec's mix; prompts are rendered chat templates."""
    rng = random.Random(f"limo-ray-toy-train:{spec.name}:{seed}")
    levels = list(LEVELS)
    while True:
        level = rng.choices(levels, weights=spec.level_weights)[0]
        domain = rng.choice(DOMAINS)
        problem = make_problem(rng, domain, level)
        if normalize_text(problem.text) in exclude:
            continue
        quality = rng.choices((1, 2, 3, 4, 5), weights=spec.quality_by_level[level - 1])[0]
        yield render_chat(system, problem.text), reference_chain(problem, quality, rng)


def encode_pair(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str]) -> list[tuple[list[int], int]]:
    """(ids, number of prompt ids) per chat: ids = prompt + response + <|im_end|>."""
    end = tokenizer.convert_tokens_to_ids(IM_END)
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    return [(p + r + [end], len(p)) for p, r in zip(p_ids, r_ids, strict=True)]


def batches(
    chats: Iterator[tuple[str, str]], tokenizer: Any, batch_size: int, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Padded (input_ids, attention_mask, labels) batches; labels cover the response and <|im_end|> only."""
    import torch

    rng = random.Random(seed)
    pad = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    while True:
        chunk = [next(chats) for _ in range(batch_size * _BUCKET_BATCHES)]
        encoded = encode_pair(tokenizer, [c[0] for c in chunk], [c[1] for c in chunk])
        encoded.sort(key=lambda e: len(e[0]))
        groups = [encoded[i : i + batch_size] for i in range(0, len(encoded), batch_size)]
        rng.shuffle(groups)
        for group in groups:
            width = max(len(ids) for ids, _ in group)
            input_ids = torch.full((len(group), width), pad, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            labels = torch.full((len(group), width), IGNORE_INDEX, dtype=torch.long)
            for row, (ids, n_prompt) in enumerate(group):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
                labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
            yield input_ids, mask, labels


# ----------------------------------------------------------------------------------------------- training


def lr_at(step: int, spec: ModelSpec) -> float:
    warmup = max(1, int(spec.steps * spec.warmup_frac))
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, spec.steps - warmup)
    floor = spec.lr * spec.min_lr_frac
    return floor + (spec.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: Any, spec: ModelSpec) -> torch.optim.Optimizer:
    import torch

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )


def autocast_dtype() -> torch.dtype | None:
    """bf16 where the CPU computes it natively (AVX-512 / AMX), else None (plain fp32)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability().upper()
    return torch.bfloat16 if ("AVX512" in capability or "AMX" in capability) else None


def train_model(
    spec: ModelSpec,
    tokenizer: Any,
    seed: int,
    exclude: Collection[str] = (),
    snapshot_steps: Collection[int] = (),
    on_snapshot: Callable[[dict[str, Any]], None] | None = None,
    start: dict[str, Any] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train `spec` from scratch, or from `start` (a snapshot of a sibling run) up to `spec.steps`.

    At each of `snapshot_steps` the (model, optimiser) state goes to `on_snapshot` as it is then: a branch
    starts from it while this run goes on."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(spec.seed + 1000 * seed)
    model = Qwen2ForCausalLM(qwen2_config(spec, tokenizer))
    optimizer = _optimizer(model, spec)
    first = 0
    if start is not None:
        model.load_state_dict(start["model"])
        optimizer.load_state_dict(start["optimizer"])
        first = start["step"]
    model.train()
    data = batches(
        training_chats(spec, seed, exclude), tokenizer, spec.batch_size, seed=spec.seed + 7919 * seed + first
    )
    result = TrainResult(model=model, seconds=0.0, tokens=0)
    amp = autocast_dtype()
    began = time.perf_counter()
    for step in range(first, spec.steps):
        if step in snapshot_steps and on_snapshot is not None:
            on_snapshot(_snapshot(model, optimizer, step))
        input_ids, mask, labels = next(data)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, spec)
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        result.tokens += int(mask.sum())
        value = float(loss.detach())
        result.losses.append(value)
        if on_step is not None:
            on_step(step, value)
    result.seconds = time.perf_counter() - began
    model.eval()
    return result


def _snapshot(model: Any, optimizer: torch.optim.Optimizer, step: int) -> dict[str, Any]:
    import copy

    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "step": step,
    }


def save_model(model: Any, tokenizer: Any, folder: str | Path) -> None:
    """HF layout: config.json (qwen2), model.safetensors, tokenizer files + chat template, generation_config."""
    from transformers import GenerationConfig

    folder = Path(folder)
    model.config.use_cache = True
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
    ).save_pretrained(str(folder))
