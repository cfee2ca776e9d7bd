"""Benchmark scores as pure statistics: pass@1 with a 95% CI, maj@k, unbiased pass@k, a paired bootstrap test.

Scores are per item: an item with n samples contributes the fraction of its samples that are correct, so
pass@1 is "averaged over n samples" as the paper reports it for AIME24/AMC23/CHMath. Items, not samples, are
the unit of resampling: samples of one item are not independent, and a CI that pretended they were would be
too narrow. With one sample per item the interval is exact (Clopper-Pearson) instead of bootstrapped.
All randomness is seeded: the same inputs give the same interval on every machine.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Estimate:
    """A proportion (0..1) with its 95% interval and how the interval was made."""

    value: float
    low: float
    high: float
    method: str


def item_scores(correct: Sequence[Sequence[bool]]) -> np.ndarray:
    """Per-item fraction of correct samples; `correct[i]` holds item i's sample verdicts (at least one)."""
    if any(len(samples) == 0 for samples in correct):
        raise ValueError("every item needs at least one sample")
    return np.array([sum(samples) / len(samples) for samples in correct], dtype=float)


def pass_at_1(correct: Sequence[Sequence[bool]], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Estimate:
    """Mean over items of the per-item success rate, with a 95% CI (exact for one sample per item)."""
    if not correct:
        return Estimate(float("nan"), float("nan"), float("nan"), "none")
    scores = item_scores(correct)
    if all(len(samples) == 1 for samples in correct):
        low, high = clopper_pearson(int(scores.sum()), len(scores))
        return Estimate(float(scores.mean()), low, high, "exact binomial (Clopper-Pearson)")
    low, high = bootstrap_ci(scores, seed=seed, resamples=resamples)
    return Estimate(float(scores.mean()), low, high, f"bootstrap over items ({resamples} resamples)")


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `scores`, resampling items with replacement."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval: the p whose binomial tail probabilities equal (1 - level) / 2."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    tail = (1 - level) / 2
    # P(X >= k | p) rises with p; P(X <= k | p) falls with p: solve each tail by bisection.
    low = 0.0 if successes == 0 else _bisect(lambda p: _binom_sf(successes, trials, p) - tail)
    high = 1.0 if successes == trials else _bisect(lambda p: tail - _binom_cdf(successes, trials, p))
    return low, high


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (stable for n in the thousands)."""
    if p <= 0:
        return 1.0
    if p >= 1:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [_log_comb(n, i) + i * log_p + (n - i) * log_q for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k)."""
    return 1.0 - _binom_cdf(k - 1, n, p) if k > 0 else 1.0


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _bisect(increasing: Callable[[float], float], low: float = 0.0, high: float = 1.0, iterations: int = 60) -> float:
    """The root of an increasing function on [low, high]."""
    for _ in range(iterations):
        mid = (low + high) / 2
        if increasing(mid) < 0:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k for one item (Chen et al. 2021): 1 - C(n - c, k) / C(n, k)."""
    if not 0 < k <= num_samples:
        raise ValueError(f"need 0 < k <= n, got k={k}, n={num_samples}")
    if not 0 <= num_correct <= num_samples:
        raise ValueError(f"need 0 <= c <= n, got c={num_correct}, n={num_samples}")
    if num_samples - num_correct < k:
        return 1.0
    # The product form avoids huge binomials: prod_{i=n-c+1}^{n} (1 - k / i).
    return 1.0 - float(np.prod(1.0 - k / np.arange(num_samples - num_correct + 1, num_samples + 1)))


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over items; every item needs at least k samples."""
    return float(np.mean([pass_at_k(len(s), sum(s), k) for s in correct])) if correct else float("nan")


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool], k: int | None = None) -> bool:
    """maj@k for one item: the most frequent extracted answer among the first k samples, and whether it is right.

    Samples with no extracted answer do not vote; ties go to the answer seen first. An item where nothing was
    extracted counts as wrong.
    """
    k = len(answers) if k is None else k
    votes: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    verdict: dict[str, bool] = {}
    for index, (answer, ok) in enumerate(zip(answers[:k], correct[:k], strict=True)):
        if answer is None or not answer.strip():
            continue
        key = " ".join(answer.split())
        votes[key] += 1
        first_seen.setdefault(key, index)
        verdict[key] = verdict.get(key, False) or bool(ok)
    if not votes:
        return False
    winner = max(votes, key=lambda a: (votes[a], -first_seen[a]))
    return verdict[winner]


def maj_at_k(answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]], k: int | None = None) -> float:
    """maj@k averaged over items."""
    if not correct:
        return float("nan")
    return float(np.mean([majority_correct(a, c, k) for a, c in zip(answers, correct, strict=True)]))


@dataclass(frozen=True)
class PairedTest:
    """A minus B on the same items: the mean difference, its 95% CI, and a two-sided p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    items: int


def paired_bootstrap(
    scores_a: Sequence[float], scores_b: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> PairedTest:
    """Paired bootstrap over items: is A's mean different from B's?

    Resample items (the same items for both), centre the resampled differences on the observed one, and count
    how often a difference at least as large as the observed arises by chance (two-sided); identical scores give
    p = 1, a consistent gap over many items gives p near 1 / (resamples + 1).
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired test needs the same, non-empty items: got {a.size} and {b.size}")
    diff = a - b
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
    extreme = int(np.sum(np.abs(means - observed) >= abs(observed) - 1e-12))
    p_value = (extreme + 1) / (resamples + 1)
    low, high = np.quantile(means, [0.025, 0.975])
    return PairedTest(observed, float(low), float(high), min(1.0, p_value), int(diff.size))
