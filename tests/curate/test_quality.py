"""Rule-based chain quality: it ranks chains written at known quality levels in order."""

from __future__ import annotations

from scipy.stats import spearmanr

from limo_ray.config import QualityWeights, load_config
from limo_ray.curate.quality import score_chain
from limo_ray.toy.chains import reference_chain
from limo_ray.toy.problems import generate_toy_problems


def test_rule_score_tracks_toy_chain_levels_with_spearman_at_least_0_8(report) -> None:
    quality = load_config("tiny").curate.quality
    levels, scores = [], []
    for i, problem in enumerate(generate_toy_problems(300, seed=7)):
        for level in range(1, 6):
            levels.append(level)
            scores.append(
                score_chain(reference_chain(problem, level, i), quality.weights, quality.reference_length).score
            )
    rho = spearmanr(levels, scores).statistic
    report(f"quality: Spearman(rule score, generated level) = {rho:.3f} over {len(levels)} toy chains")
    assert rho >= 0.8


def test_features_saturate_and_weights_apply() -> None:
    weights = QualityWeights()
    terse = score_chain("\\boxed{7}", weights, 100)
    rich = score_chain(
        "Let me think. Perhaps we first add: 3 + 4 = 7. Check: 7 - 4 = 3, so it is correct. Therefore \\boxed{7}.",
        weights,
        10,
    )
    assert terse.level == 1 and terse.features["verification"] == 0.0
    assert rich.features == {"length": 1.0, "verification": 1.0, "tentative": 1.0, "connectives": 1.0}
    assert rich.score == 1.0 and rich.level == 5
    spam = score_chain("wait " * 1000, weights, 4000)
    assert spam.features["tentative"] == 1.0 and spam.score < 0.6
