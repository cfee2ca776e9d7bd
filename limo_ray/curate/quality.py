"""Rule-based chain quality, after the LIMO paper: length 30%, verification 20%, exploratory words 25%,
logical connectives 25%, each length-normalised, mapped to levels L1-L5.

Each feature is a number in [0, 1]:
- length: log(1 + words) / log(1 + reference_length), capped at 1: longer chains (more worked reasoning) score
  higher, with diminishing returns; `reference_length` is the length that counts as "full" (thousands of words
  for R1-style chains, about a hundred for the toy world).
- verification, tentative, connectives: occurrences per 100 words, divided by a saturation density and capped
  at 1, so a chain is not rewarded for repeating "wait" a thousand times and a short chain is not punished for
  being short.
The score is the weighted sum; the level is 1 + floor(5 x score), capped at 5.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from limo_ray.config import QualityWeights

VERIFICATION = (
    "check",
    "checking",
    "verify",
    "verifying",
    "verified",
    "confirm",
    "confirms",
    "double-check",
    "sanity",
    "substitute back",
    "plug back",
    "indeed",
    "correct",
)
TENTATIVE = (
    "let me",
    "let's",
    "perhaps",
    "maybe",
    "might",
    "wait",
    "alternatively",
    "suppose",
    "what if",
    "hmm",
    "i think",
    "try",
    "consider",
    "seems",
)
CONNECTIVES = (
    "therefore",
    "thus",
    "hence",
    "so",
    "because",
    "since",
    "then",
    "consequently",
    "which means",
    "it follows",
    "as a result",
    "first",
    "next",
    "finally",
)

# Per 100 words, the density at which a feature counts as fully present.
SATURATION = {"verification": 0.5, "tentative": 1.0, "connectives": 2.0}
_WORD = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)?")


def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


_PATTERNS = {
    "verification": _phrase_pattern(VERIFICATION),
    "tentative": _phrase_pattern(TENTATIVE),
    "connectives": _phrase_pattern(CONNECTIVES),
}


@dataclass(frozen=True)
class QualityScore:
    score: float
    level: int
    features: dict[str, float]
    words: int


def score_chain(text: str, weights: QualityWeights, reference_length: int) -> QualityScore:
    words = len(_WORD.findall(text))
    features = {"length": min(1.0, math.log1p(words) / math.log1p(reference_length))}
    for name, pattern in _PATTERNS.items():
        density = 100.0 * len(pattern.findall(text)) / max(words, 1)
        features[name] = min(1.0, density / SATURATION[name])
    score = (
        weights.length * features["length"]
        + weights.verification * features["verification"]
        + weights.tentative * features["tentative"]
        + weights.connectives * features["connectives"]
    )
    level = min(5, 1 + int(score * 5))
    return QualityScore(round(score, 6), level, {k: round(v, 6) for k, v in features.items()}, words)
