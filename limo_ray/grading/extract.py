"""Find the final answer in a model response: the last `\\boxed{}` first, then "the answer is" fallbacks.

The final answer is what the grader compares, so extraction decides which of a response's candidate answers
counts: always the *last* one given, so a right answer in an abandoned draft followed by a wrong final box
is wrong. A reasoning model's `<think>` block is scratch work: only what follows `</think>` is the answer,
and a response whose `<think>` never closed was cut off before it answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from limo_ray.records.boxed import last_boxed

# Fallbacks in order of preference; for each, the last occurrence in the text wins. Markdown bold around the
# phrase (`**Answer:** 12`, `**Final answer:** 12`), a common model style, is not part of the answer.
_FALLBACKS = [
    re.compile(r"final answer\s*(?:is)?\**\s*[:：]?\s*\**\s*(?P<ans>[^\n]+)", re.IGNORECASE),
    re.compile(r"the answer is\s*:?\s*\**\s*(?P<ans>[^\n]+)", re.IGNORECASE),
    re.compile(r"(?:^|\n)\s*\**answer\**\s*[:：]\s*\**\s*(?P<ans>[^\n]+)", re.IGNORECASE),
    re.compile(r"####\s*(?P<ans>[^\n]+)"),
]
_INLINE_MATH = re.compile(r"\$+([^$]+)\$+|\\\((.+?)\\\)")
_CHOICE = re.compile(r"^\(?\s*([A-J])\s*\)?(?:$|[.:)\s])")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Extraction:
    answer: str | None
    how: str


def extract_final_answer(response: str) -> Extraction:
    """The final answer of `response`, or None with the reason there is none."""
    if "<think>" in response or "</think>" in response:
        close = response.rfind("</think>")
        if close < 0:
            return Extraction(None, "unfinished <think> block: the response was cut off before answering")
        response = response[close + len("</think>") :]
    boxed = last_boxed(response)
    if boxed is not None:
        boxed = boxed.strip()
        return Extraction(boxed or None, "boxed" if boxed else "empty \\boxed{}")
    for pattern in _FALLBACKS:
        last = None
        for last in pattern.finditer(response):  # noqa: B007 - we want the last match
            pass
        if last is not None:
            answer = _clean_fallback(last.group("ans"))
            if answer:
                return Extraction(answer, "answer phrase")
    return Extraction(None, "no final answer (no \\boxed{} and no answer phrase)")


def _clean_fallback(text: str) -> str:
    text = text.strip()
    math = _INLINE_MATH.search(text)
    if math:
        text = math.group(1) or math.group(2)
    return text.strip().rstrip(".").strip().strip("*").strip()


def extract_choice(answer: str) -> str | None:
    """A multiple-choice letter from an extracted answer: `C`, `(C)`, `C. {x | ...}`, `\\text{C}`."""
    unwrapped = _TEXT_WRAPPER.sub(r"\1", answer).strip().strip("$").strip()
    match = _CHOICE.match(unwrapped)
    return match.group(1) if match else None
