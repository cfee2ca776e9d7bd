"""LLM-judge grading for open-form benchmarks (CHMath, Gaokao, Kaoyan, GradeSchool): a `Judge` interface and
`EndpointJudge`, which asks a model behind an OpenAI-compatible URL whether the answer matches the reference.

The judge sees the problem, the reference answer and the end of the response (the final answer is at the end;
a 32k-token chain would not fit a judge's context) and must answer YES or NO. Greedy decoding: the same
response gets the same verdict on every run.
"""

from __future__ import annotations

import re
from typing import Protocol

from limo_ray.evaluate.client import ChatClient
from limo_ray.grading import Verdict, extract_final_answer

JUDGE_SYSTEM_PROMPT = "You are a careful, strict grader of mathematics answers."
JUDGE_PROMPT = """Decide whether the final answer in a student's response is equivalent to the reference answer.

Problem:
{problem}

Reference answer:
{gold}

Student's response (only its final answer matters; earlier text may be cut):
{response}

Reply with exactly one word: YES if the student's final answer is mathematically equivalent to the reference \
answer, NO otherwise."""
# The end of a response is where its final answer is; this much is plenty and fits any judge's context.
RESPONSE_TAIL_CHARS = 4000
_VERDICT = re.compile(r"\b(YES|NO)\b", re.IGNORECASE)


class Judge(Protocol):
    async def judge(self, problem: str, gold: str, response: str) -> Verdict: ...


def judge_messages(problem: str, gold: str, response: str) -> list[dict[str, str]]:
    tail = response[-RESPONSE_TAIL_CHARS:]
    if len(response) > RESPONSE_TAIL_CHARS:
        tail = "..." + tail
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": JUDGE_PROMPT.format(problem=problem, gold=gold, response=tail)},
    ]


def parse_judgement(text: str) -> bool | None:
    """The judge's last YES/NO word; None when it gave neither."""
    found = _VERDICT.findall(text or "")
    return found[-1].upper() == "YES" if found else None


class EndpointJudge:
    """A judge model behind an OpenAI-compatible endpoint (any `ChatClient`)."""

    def __init__(self, client: ChatClient, model: str, max_tokens: int = 8) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    async def judge(self, problem: str, gold: str, response: str) -> Verdict:
        extracted = extract_final_answer(response).answer
        if not response.strip():
            return Verdict(False, None, "empty response")
        (completion,) = await self.client.chat(
            self.model, judge_messages(problem, gold, response), n=1, temperature=0.0, max_tokens=self.max_tokens
        )
        verdict = parse_judgement(completion.text)
        if verdict is None:
            return Verdict(False, extracted, f"judge {self.model} gave no YES/NO: {completion.text[:80]!r}")
        return Verdict(verdict, extracted, f"judge {self.model}: {'YES' if verdict else 'NO'}")
