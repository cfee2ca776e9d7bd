"""The numbers that shape each size of the toy world (`ToySpec`, `TOY_SPECS`: the tuned calibration lives here)
and the world's fixed parts: its four models and its version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from limo_ray.errors import LimoError
from limo_ray.toy.models import ModelSpec
from limo_ray.toy.problems import DOMAINS, LEVELS

# Bump when the world changes in a way the hashed sources do not show (e.g. a dependency's behaviour).
WORLD_VERSION = 1
MODEL_NAMES: tuple[str, ...] = ("weak", "strong", "strong_b", "student")
Size = Literal["full", "test"]

# Chain-quality mixes (weights of L1..L5), named for what they teach.
_TERSE = (0.2, 0.8, 0.0, 0.0, 0.0)  # mostly bare equations: the weak model's style...
_GUESS = (0.6, 0.4, 0.0, 0.0, 0.0)  # ...and on the harder levels it mostly just guesses
_GOOD = (0.0, 0.1, 0.3, 0.2, 0.4)  # mostly explained chains: the strong model's style
_GOOD_B = (0.0, 0.1, 0.2, 0.2, 0.5)
_SHORT_GOOD = (0.0, 0.2, 0.5, 0.1, 0.2)  # the same styles, shorter on average: more steps per second
_SHOWN = (0.5, 0.0, 0.5, 0.0, 0.0)  # the test-size student sees worked steps on easy problems...
_BLURT = (0.85, 0.0, 0.15, 0.0, 0.0)  # ...and mostly bare answers on hard ones
# The full-size student is LIMO's base model in miniature: it can reason (it branches from the strong model's
# run) but its habit on hard problems is to state a bare answer, as an instruct model answers tersely. Greedy
# decoding follows the habit; a few hundred good chains change the habit, not the skill.
_ANSWER_ONLY = (0.7, 0.0, 0.0, 0.1, 0.2)


@dataclass(frozen=True)
class ToySpec:
    """Every number that shapes one size of the toy world (the tuned calibration lives here)."""

    size: str
    vocab_size: int
    tokenizer_problems: int
    pool_size: int
    benchmark_per_cell: int  # benchmark problems per (domain, level) cell
    exact_dup_frac: float  # pool rows repeated verbatim under a new id
    case_dup_frac: float  # repeated with case / spacing changed (equal after normalisation)
    near_dup_frac: float  # repeated with a small edit (punctuation dropped, a name swapped)
    weak: ModelSpec
    strong: ModelSpec
    strong_b: ModelSpec
    student: ModelSpec

    def model_specs(self) -> tuple[ModelSpec, ...]:
        return (self.weak, self.strong, self.strong_b, self.student)

    @property
    def benchmark_size(self) -> int:
        return self.benchmark_per_cell * len(DOMAINS) * len(LEVELS)


def _spec(name: str, size: tuple[int, int, int, int, int], steps: int, lr: float, seed: int, **mix: Any) -> ModelSpec:
    hidden, layers, heads, kv_heads, intermediate = size
    return ModelSpec(
        name=name,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        steps=steps,
        batch_size=mix.pop("batch_size", 16),
        lr=lr,
        seed=seed,
        **mix,
    )


TOY_SPECS: dict[str, ToySpec] = {
    "full": ToySpec(
        size="full",
        vocab_size=1024,
        tokenizer_problems=3000,
        pool_size=2000,  # the tiny preset curates all of it within its 8-minute budget
        benchmark_per_cell=15,
        exact_dup_frac=0.02,
        case_dup_frac=0.02,
        near_dup_frac=0.03,
        weak=_spec(
            "weak", (128, 2, 4, 2, 384), 3400, 1e-3, 1,
            level_weights=(0.36, 0.36, 0.2, 0.08, 0.0), quality_by_level=(_TERSE, _TERSE, _GUESS, _GUESS, _GUESS),
        ),
        strong=_spec(
            "strong", (128, 3, 4, 2, 384), 2000, 1e-3, 2,
            level_weights=(0.15, 0.15, 0.2, 0.25, 0.25), quality_by_level=(_GOOD,) * 5,
        ),
        strong_b=_spec(
            "strong_b", (128, 3, 4, 2, 384), 2000, 1e-3, 3,
            level_weights=(0.15, 0.15, 0.2, 0.25, 0.25), quality_by_level=(_GOOD_B,) * 5,
            branch_of="strong", branch_at=0.75,
        ),
        student=_spec(
            "student", (128, 3, 4, 2, 384), 2000, 1e-3, 4,
            level_weights=(0.2,) * 5, quality_by_level=(_GOOD, _GOOD, _ANSWER_ONLY, _ANSWER_ONLY, _ANSWER_ONLY),
            branch_of="strong", branch_at=0.8,
        ),
    ),
    "test": ToySpec(
        size="test",
        vocab_size=1024,
        tokenizer_problems=1000,
        pool_size=600,
        benchmark_per_cell=5,
        exact_dup_frac=0.02,
        case_dup_frac=0.02,
        near_dup_frac=0.03,
        # A third of the full world's compute. The strong model's chains are long, so it takes one lane; the weak
        # one (short chains) trains as many steps in the other, on the easy levels only: it drops most easy
        # problems and so "strong beats weak at the top" holds.
        weak=_spec(
            "weak", (128, 2, 4, 2, 384), 2000, 1e-3, 1,
            level_weights=(0.5, 0.4, 0.1, 0.0, 0.0), quality_by_level=(_TERSE, _TERSE, _GUESS, _GUESS, _GUESS),
        ),
        strong=_spec(
            "strong", (128, 2, 4, 2, 384), 1300, 1e-3, 2,
            level_weights=(0.3, 0.25, 0.2, 0.15, 0.1), quality_by_level=(_SHORT_GOOD,) * 5,
        ),
        strong_b=_spec(
            "strong_b", (128, 2, 4, 2, 384), 1300, 1e-3, 3,
            level_weights=(0.15, 0.15, 0.2, 0.25, 0.25), quality_by_level=(_GOOD_B,) * 5,
            branch_of="strong", branch_at=0.85,
        ),
        student=_spec(
            "student", (64, 2, 2, 1, 192), 600, 1.5e-3, 4,
            level_weights=(0.2,) * 5, quality_by_level=(_SHOWN, _SHOWN, _BLURT, _BLURT, _BLURT),
        ),
    ),
}  # fmt: skip


def toy_spec(size: str) -> ToySpec:
    if size not in TOY_SPECS:
        raise LimoError(f"unknown toy world size {size!r}; use one of {', '.join(TOY_SPECS)}")
    return TOY_SPECS[size]
