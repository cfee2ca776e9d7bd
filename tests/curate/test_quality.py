"""Rule-based chain quality: it ranks chains written at known quality levels in order, and chains the toy
models write by the style they write them in."""

from __future__ import annotations

import difflib
from collections import defaultdict
from statistics import mean

import pytest
from scipy.stats import spearmanr

from limo_ray.config import LIMO_SYSTEM_PROMPT, QualityWeights, load_config
from limo_ray.curate.quality import score_chain
from limo_ray.toy import ToyWorld
from limo_ray.toy.chains import QUALITY_LEVELS, reference_chain
from limo_ray.toy.problems import ToyProblem, generate_toy_problems
from limo_ray.toy.tokenizer import IM_END, render_chat


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


def _sample_chains(model_dir: str, problems: list[ToyProblem], n: int) -> list[str]:
    """`n` chains per problem from a toy model (T=0.7, the tiny preset's chain sampling), in problem order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    prompts = tokenizer(
        [render_chat(LIMO_SYSTEM_PROMPT, p.text) for p in problems],
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(
            **prompts,
            do_sample=True,
            temperature=0.7,
            top_p=0.95,
            max_new_tokens=200,
            num_return_sequences=n,
            eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
            pad_token_id=tokenizer.pad_token_id,
        )
    completions = out[:, prompts["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(completions, skip_special_tokens=True)]


def _style_level(problem: ToyProblem, chain: str) -> int:
    """The quality level whose reference chain for this problem the text is most like, character by character.

    The models learnt to write in the five reference styles; this reads a chain's style from its whole shape
    (bare answer, bare equations, numbered steps, explained steps, plan-explain-check), not from the words the
    rule scorer counts. L5's phrasing varies with its seed, so several of its variants are compared."""
    variants = [(q, reference_chain(problem, q, seed)) for q in QUALITY_LEVELS for seed in range(12 if q == 5 else 1)]
    return max(variants, key=lambda v: difflib.SequenceMatcher(None, v[1], chain).ratio())[0]


@pytest.mark.integration
def test_rule_score_ranks_chains_the_toy_models_write_by_their_style(toy_world: ToyWorld, report) -> None:
    """The check above scores chains written from the templates; here the chains are sampled from the weak
    (L1-L2 style), strong (mostly L3) and strong_b (mostly L4-L5) models, as curation sees them."""
    quality = load_config("tiny").curate.quality
    problems = generate_toy_problems(30, seed=12)
    by_level: dict[int, list[float]] = defaultdict(list)
    for model in ("weak", "strong", "strong_b"):
        chains = _sample_chains(str(toy_world.path(model)), problems, n=2)
        for i, chain in enumerate(chains):
            score = score_chain(chain, quality.weights, quality.reference_length).score
            by_level[_style_level(problems[i // 2], chain)].append(score)
    levels = [lv for lv, scores in by_level.items() for _ in scores]
    scores = [s for lv in by_level for s in by_level[lv]]
    rho = spearmanr(levels, scores).statistic
    means = {lv: mean(by_level[lv]) for lv in QUALITY_LEVELS}
    report(
        f"quality: Spearman(rule score, style level) = {rho:.3f} over {len(scores)} model chains; mean score by "
        + ", ".join(f"L{lv} {means[lv]:.3f} (n={len(by_level[lv])})" for lv in QUALITY_LEVELS)
    )
    assert all(len(by_level[lv]) >= 5 for lv in QUALITY_LEVELS)  # every style was written, so every rank is tested
    assert rho >= 0.8
    # L1 (a bare answer) and L2 (bare equations) tie: neither has a word the scorer counts, and both are at the
    # length feature's floor. From L2 up each style scores higher on average.
    assert means[1] <= means[2] < means[3] < means[4] < means[5]
