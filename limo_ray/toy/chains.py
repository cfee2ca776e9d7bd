"""Reference reasoning chains for toy problems at the LIMO paper's quality levels L1 (worst) to L5 (best).

LIMO ranks chains by how they reason, not only by whether they end right: L5 chains plan, explain each step,
explore ("let me", "perhaps"), verify ("check", "verify") and connect steps ("so", "because", "therefore");
L1 chains just state an answer. The toy models learn their writing style from these chains, so a model trained
on a mixture of levels samples chains of mixed quality, and curation's quality scorer has real choices to make.

Every chain is written from the problem's computed steps and ends in `\\boxed{answer}`: correct at every level.
Phrasing varies (seeded per problem and level) so that chains of one level are not a single fixed string.
Chains are short on purpose: system prompt + problem + L5 chain stay under ~200 tokens with the toy tokenizer,
so `max_model_len 512` / `max_tokens 200` hold.
"""

from __future__ import annotations

import random

from limo_ray.errors import LimoError
from limo_ray.toy.problems import ToyProblem

QUALITY_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

_OPENERS = ("Let me {plan}.", "Perhaps it is best to {plan}.", "Let me think. Perhaps I should {plan}.")
_MIDDLE = ("Next, {why}: {math}.", "Then {why}: {math}.", "So {math}, because we {why}.")
_CHECKS = ("Let me check: {check}. Verified.", "Check: {check}, so it is right.", "To verify: {check}. Correct.")
_FINALS = ("Therefore the answer is \\boxed{{{answer}}}.", "So the answer is \\boxed{{{answer}}}.")


def _rng(problem: ToyProblem, quality: int, seed: int | random.Random) -> random.Random:
    if isinstance(seed, random.Random):
        return seed
    return random.Random(f"limo-ray-toy-chain:{seed}:{quality}:{problem.text}")


def reference_chain(problem: ToyProblem, quality: int, seed: int | random.Random = 0) -> str:
    """The worked solution of `problem` written at `quality` (1-5); ends in `\\boxed{answer}`.

    `seed` picks among phrasings: an int gives the same chain for the same problem every time; a Random
    (the trainers pass one) gives a fresh phrasing per draw.
    """
    if quality not in QUALITY_LEVELS:
        raise LimoError(f"chain quality level must be one of {QUALITY_LEVELS}, got {quality!r}")
    rng = _rng(problem, quality, seed)
    steps, answer = problem.steps, problem.answer
    boxed = f"\\boxed{{{answer}}}"
    if quality == 1:
        return boxed
    if quality == 2:
        return "; ".join(s.math for s in steps) + f". {boxed}"
    if quality == 3:
        lines = [f"Step {i}: {s.math}." for i, s in enumerate(steps, 1)]
        return "\n".join([*lines, f"The answer is {boxed}."])
    if quality == 4:
        if len(steps) == 1:
            lines = [f"We {steps[0].why}: {steps[0].math}."]
        else:
            lines = [f"First, {steps[0].why}: {steps[0].math}."]
            lines += [f"Then, {s.why}: {s.math}." for s in steps[1:]]
        return "\n".join([*lines, f"So the answer is {boxed}."])
    lines = [rng.choice(_OPENERS).format(plan=problem.plan)]
    for i, s in enumerate(steps):
        if i == 0:
            lines.append(f"First, {s.why}: {s.math}.")
        elif i == len(steps) - 1:
            lines.append(f"So {s.math}, because we {s.why}.")
        else:
            lines.append(rng.choice(_MIDDLE).format(why=s.why, math=s.math))
    lines.append(rng.choice(_CHECKS).format(check=steps[-1].check))
    lines.append(rng.choice(_FINALS).format(answer=answer))
    return "\n".join(lines)
