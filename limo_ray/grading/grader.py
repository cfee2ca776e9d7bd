"""`grade(response, gold) -> Verdict`: the one place that decides whether a model's answer is right.

Every "hard problem", every "correct chain" and every benchmark score goes through here, so the rules are
few and explicit:
1. extract the final answer (last `\\boxed{}`, then answer phrases; nothing after an unfinished `<think>`);
2. multiple-choice golds (a single letter) compare letters;
3. otherwise an exact text or exact number match decides at once;
4. otherwise math-verify decides, within a bounded time; a timeout counts as incorrect, with that reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from limo_ray.grading.compare import quick_compare
from limo_ray.grading.extract import extract_choice, extract_final_answer
from limo_ray.grading.symbolic import SymbolicVerifier

GradeMode = Literal["auto", "math", "choice"]
_CHOICE_GOLD = re.compile(r"^\(?([A-J])\)?$")


@dataclass(frozen=True, slots=True)
class Verdict:
    correct: bool
    extracted: str | None
    reason: str


class Grader:
    """Holds the per-process symbolic helper; safe to share between threads and to ship to Ray actors."""

    def __init__(self, timeout_s: int = 5) -> None:
        self.symbolic = SymbolicVerifier(timeout_s)
        logging.getLogger("math_verify").setLevel(logging.ERROR)

    def grade(self, response: str, gold: str, mode: GradeMode = "auto") -> Verdict:
        gold = str(gold).strip()
        if not gold:
            raise ValueError("grade() needs a non-empty gold answer")
        extraction = extract_final_answer(response)
        if extraction.answer is None:
            return Verdict(False, None, extraction.how)
        answer = extraction.answer
        choice_gold = _CHOICE_GOLD.match(gold) if mode != "math" else None
        if mode == "choice" or choice_gold:
            gold_letter = choice_gold.group(1) if choice_gold else extract_choice(gold)
            letter = extract_choice(answer)
            if letter is None:
                return Verdict(False, answer, "no choice letter in the final answer")
            return Verdict(
                letter == gold_letter, letter, "same choice" if letter == gold_letter else "different choice"
            )
        quick = quick_compare(answer, gold)
        if quick.equal is not None:
            return Verdict(quick.equal, answer, quick.reason)
        equal = self.symbolic.equal(answer, gold)
        if equal is None:
            return Verdict(False, answer, "not verifiable: unparseable, too long or timed out")
        return Verdict(equal, answer, "symbolically equal" if equal else "symbolically different")

    def grade_many(self, responses: Iterable[str], golds: Iterable[str], mode: GradeMode = "auto") -> list[Verdict]:
        return [self.grade(r, g, mode) for r, g in zip(responses, golds, strict=True)]

    def grade_batch(
        self,
        batch: Mapping[str, Sequence[Any]],
        response_column: str = "response",
        answer_column: str = "answer",
        prefix: str = "",
        mode: GradeMode = "auto",
    ) -> dict[str, Any]:
        """Ray Data `map_batches` form: adds `<prefix>correct`, `<prefix>extracted`, `<prefix>grade_reason`."""
        verdicts = self.grade_many(
            (str(r) for r in batch[response_column]), (str(a) for a in batch[answer_column]), mode
        )
        out = {key: list(values) for key, values in batch.items()}
        out[f"{prefix}correct"] = [v.correct for v in verdicts]
        out[f"{prefix}extracted"] = [v.extracted for v in verdicts]
        out[f"{prefix}grade_reason"] = [v.reason for v in verdicts]
        return out

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
        return self.grade_batch(batch)


_default: Grader | None = None


def default_grader() -> Grader:
    # One per process, created on first use: it owns the helper process for off-main-thread calls.
    global _default
    if _default is None:
        _default = Grader()
    return _default


def grade(response: str, gold: str, mode: GradeMode = "auto") -> Verdict:
    """Grade one response against its gold answer (see the module docstring for the rules)."""
    return default_grader().grade(response, gold, mode)
