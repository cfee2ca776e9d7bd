"""Score statistics with numbers: the pass@k estimator against brute force, CI coverage, the paired bootstrap's
p-values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from limo_ray.evaluate import statistics


@pytest.mark.parametrize(("n", "c"), [(4, 0), (4, 1), (4, 2), (4, 4), (8, 3), (10, 1), (10, 7)])
def test_pass_at_k_equals_brute_force_over_all_k_subsets(n: int, c: int) -> None:
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(outcomes, k))
        brute = sum(any(s) for s in subsets) / len(subsets)
        assert statistics.pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_1_is_the_mean_of_per_item_rates() -> None:
    estimate = statistics.pass_at_1([[True, False, False, False], [True, True, True, True], [False] * 4])
    assert estimate.value == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    assert estimate.low <= estimate.value <= estimate.high
    assert "bootstrap" in estimate.method


def test_single_sample_ci_is_exact_clopper_pearson() -> None:
    estimate = statistics.pass_at_1([[True]] * 7 + [[False]] * 3)
    assert estimate.value == pytest.approx(0.7)
    # Reference values for 7/10 at 95% (scipy.stats.binomtest(7, 10).proportion_ci(method="exact")).
    assert estimate.low == pytest.approx(0.34754, abs=1e-4)
    assert estimate.high == pytest.approx(0.93326, abs=1e-4)
    assert statistics.clopper_pearson(0, 30)[0] == 0.0
    assert statistics.clopper_pearson(0, 30)[1] == pytest.approx(1 - 0.025 ** (1 / 30), abs=1e-6)
    assert statistics.clopper_pearson(30, 30) == (pytest.approx(0.025 ** (1 / 30), abs=1e-6), 1.0)


def test_bootstrap_ci_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    true_rate, items, samples, trials = 0.4, 60, 4, 300
    covered = 0
    for trial in range(trials):
        # Items differ in difficulty (beta-distributed rates with mean 0.4): the realistic, clustered case.
        rates = rng.beta(2.0, 3.0, size=items)
        correct = [list(rng.random(samples) < r) for r in rates]
        estimate = statistics.pass_at_1(correct, seed=trial, resamples=2000)
        covered += estimate.low <= true_rate <= estimate.high
    assert 0.90 <= covered / trials <= 0.99, covered / trials


def test_exact_ci_covers_at_least_95_percent() -> None:
    rng = np.random.default_rng(3)
    covered = sum(
        lo <= 0.3 <= hi
        for lo, hi in (statistics.clopper_pearson(int((rng.random(40) < 0.3).sum()), 40) for _ in range(400))
    )
    assert covered / 400 >= 0.94


def test_maj_at_k_votes_on_extracted_answers() -> None:
    assert statistics.majority_correct(["5", "5", "6", None], [True, True, False, False])
    assert not statistics.majority_correct(["6", "6", "5", "5"], [False, False, True, True])  # tie: first seen wins
    assert not statistics.majority_correct([None, None], [False, False])
    assert statistics.majority_correct(["7", "3", "3"], [True, False, False], k=1)
    assert statistics.maj_at_k([["5", "5", "6"], ["1", "2", "2"]], [[True, True, False], [True, False, False]]) == 0.5


def test_paired_bootstrap_p_is_small_for_a_clear_gap_and_one_for_identical_scores() -> None:
    rng = np.random.default_rng(0)
    a = (rng.random(200) < 0.7).astype(float)
    b = (rng.random(200) < 0.3).astype(float)
    clear = statistics.paired_bootstrap(a, b, seed=0, resamples=5000)
    assert clear.delta == pytest.approx(a.mean() - b.mean())
    assert clear.p_value < 0.001
    assert clear.low > 0
    same = statistics.paired_bootstrap(a, a, seed=0, resamples=5000)
    assert same.delta == 0 and same.p_value == 1.0


def test_paired_bootstrap_p_is_large_for_two_draws_of_the_same_model() -> None:
    rng = np.random.default_rng(1)
    rates = rng.random(100)
    a = (rng.random(100) < rates).astype(float)
    b = (rng.random(100) < rates).astype(float)
    assert statistics.paired_bootstrap(a, b, seed=0, resamples=5000).p_value > 0.05


def test_empty_input_gives_nan_not_an_error() -> None:
    assert math.isnan(statistics.pass_at_1([]).value)
    with pytest.raises(ValueError):
        statistics.pass_at_k(4, 5, 1)
