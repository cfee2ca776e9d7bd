"""The arms of each study, built from a finished curation's files: the acceptance checks of issue 20 on how each
study's arms are made (not on what training on them does)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from limo_ray.ablate.arms import (
    DIFFICULTY_OVERSAMPLE,
    LEVELS,
    ArmSource,
    backbone_arms,
    difficulty_arms,
    difficulty_bin,
    difficulty_candidates,
    difficulty_members,
    quality_arms,
    reference_arm,
    selection_arms,
    selection_candidates,
    selection_size,
    size_arms,
    strong_only_candidates,
    strong_probe,
)
from limo_ray.ablate.source import Curation, kept_by, read_curation, source_level, strong_solve_rate
from limo_ray.config import DifficultyStudyConfig, load_config
from limo_ray.curate.baseline import OVERSAMPLE
from limo_ray.curate.quality import score_chain
from limo_ray.errors import LimoError
from tests.ablate.conftest import (
    CHAIN_MODELS,
    CURATED_SIZE,
    DECONTAMINATION_DROPS,
    DEDUP_DROPS,
    QUALITY,
    STRONG_ATTEMPTS,
    SYSTEM,
    SyntheticRun,
    number,
    strong_successes,
)

BINS = load_config("tiny").ablate.difficulty.bins  # simple [0.5, 1] L1-2, complex [0.25, 0.5) L3, advanced L4-5


def source(curation: Curation) -> ArmSource:
    return ArmSource(curation, SYSTEM, CHAIN_MODELS, "student")


def scored_for(ids: Iterable[str], unsolved: set[str] = frozenset()) -> list[dict[str, Any]]:
    """One correct chain per problem (what a study's generation returns), none for `unsolved`."""
    rows = []
    for pid in sorted(set(ids) - set(unsolved)):
        text = f"First, we work it out. So the answer is \\boxed{{{number(pid)}}}."
        score = score_chain(text, QUALITY.weights, QUALITY.reference_length)
        rows.append(
            {
                "problem_id": pid,
                "model": "strong",
                "attempt_index": 0,
                "response": text,
                "num_tokens": 12,
                "words": score.words,
                "score": score.score,
                "level": score.level,
                "features": "{}",
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------- quality


def test_quality_arms_hold_the_same_problems_and_each_chain_is_at_its_level_by_the_scorer(
    synthetic_run: SyntheticRun,
) -> None:
    curation = synthetic_run.curation
    arms = quality_arms(source(curation), curation.scored, count=500, seed=0)
    assert [arm.name for arm in arms] == [f"L{level}" for level in LEVELS]
    ids = {frozenset(arm.problem_ids) for arm in arms}
    assert len(ids) == 1  # the same problems in every arm
    (problems,) = ids
    band = set(kept_by(curation.ledger, "balance"))
    assert problems == band - synthetic_run.lacks_l3  # a problem without an L3 chain is in no arm
    assert len(problems) == 42 - 11
    for level, arm in zip(LEVELS, arms, strict=True):
        for sample in arm.samples:
            assert score_chain(sample.response, QUALITY.weights, QUALITY.reference_length).level == level
            assert sample.provenance["chain"]["level"] == level
            assert sample.answer == curation.problems[sample.id].answer


def test_quality_arms_take_count_problems_drawn_by_seed(synthetic_run: SyntheticRun) -> None:
    curation = synthetic_run.curation
    first = quality_arms(source(curation), curation.scored, count=10, seed=0)
    again = quality_arms(source(curation), list(reversed(curation.scored)), count=10, seed=0)
    other = quality_arms(source(curation), curation.scored, count=10, seed=1)
    assert all(len(arm.samples) == 10 for arm in first)
    assert [arm.samples for arm in first] == [arm.samples for arm in again]  # input order does not matter
    assert set(first[0].problem_ids) != set(other[0].problem_ids)
    assert {frozenset(arm.problem_ids) for arm in other} == {frozenset(other[0].problem_ids)}


def test_quality_without_a_problem_at_every_level_says_what_the_chains_hold_and_what_to_change(
    synthetic_run: SyntheticRun,
) -> None:
    no_l4 = [row for row in synthetic_run.curation.scored if row["level"] != 4]
    with pytest.raises(LimoError, match=r"L4 0, L5 \d+\).*ablate\.quality\.chains_per_model.*ablate\.quality\.levels"):
        quality_arms(source(synthetic_run.curation), no_l4, count=10, seed=0)


def test_quality_arms_on_the_levels_the_chain_models_write(synthetic_run: SyntheticRun) -> None:
    """Chain models that never write at L4: the study runs on the levels asked for, the same problems in each."""
    curation = synthetic_run.curation
    no_l4 = [row for row in curation.scored if row["level"] != 4]
    arms = quality_arms(source(curation), no_l4, count=500, seed=0, levels=(1, 3, 5))
    assert [arm.name for arm in arms] == ["L1", "L3", "L5"]
    assert len({frozenset(arm.problem_ids) for arm in arms}) == 1
    for level, arm in zip((1, 3, 5), arms, strict=True):
        assert {s.provenance["chain"]["level"] for s in arm.samples} == {level}
    assert reference_arm("quality", [arm.name for arm in arms]) == "L5"


def test_quality_levels_are_distinct_scorer_levels_and_kept_in_order() -> None:
    assert load_config("tiny", ["ablate.quality.levels=[5, 1, 3]"]).ablate.quality.levels == [1, 3, 5]
    for bad in ("[1, 6]", "[3, 3]", "[4]"):
        with pytest.raises(LimoError, match=r"ablate\.quality\.levels"):
            load_config("tiny", [f"ablate.quality.levels={bad}"])


# ----------------------------------------------------------------------------------------------- difficulty


def test_difficulty_bins_by_strong_solve_rate_where_measured_else_by_source_level(synthetic_run: SyntheticRun) -> None:
    ledger = synthetic_run.curation.ledger
    members = difficulty_members(synthetic_run.curation, BINS)
    where = {pid: name for name, ids in members.items() for pid in ids}
    clean = set(kept_by(ledger, "decontaminate"))
    assert set(where) <= clean and not (set(where) & (DEDUP_DROPS | DECONTAMINATION_DROPS))
    for row in ledger:
        pid = row["problem_id"]
        if pid not in clean:
            continue
        rate = strong_solve_rate(row)
        if row["strong_filter"] is None:  # the weak filter dropped it: its source level decides
            assert rate is None
            assert (
                where[pid]
                == {1: "simple", 2: "simple", 3: "complex", 4: "advanced", 5: "advanced"}[
                    source_level(row["difficulty"])
                ]
            )
        else:
            assert rate == strong_successes(pid) / STRONG_ATTEMPTS
            expected = "simple" if rate >= 0.5 else "complex" if rate >= 0.25 else "advanced"
            assert where[pid] == expected
    # A level-5 problem the strong filter solved 5 times of 8 is "simple": the measurement wins over the label.
    assert (
        difficulty_bin(
            {"difficulty": "5", "strong_filter": "dropped", "strong_filter_facts": {"attempts": 8, "successes": 5}},
            BINS,
        )
        == "simple"
    )
    assert difficulty_bin({"difficulty": "Level 2", "strong_filter": None}, BINS) == "simple"


def test_difficulty_arms_are_disjoint_equal_in_size_and_each_from_its_bin(synthetic_run: SyntheticRun) -> None:
    curation = synthetic_run.curation
    members = difficulty_members(curation, BINS)
    candidates = difficulty_candidates(curation, BINS, per_arm=12, seed=0)
    for name, ids in candidates.items():
        assert set(ids) <= set(members[name])
        assert len(ids) == min(len(members[name]), math.ceil(12 * DIFFICULTY_OVERSAMPLE))
    everyone = [pid for ids in candidates.values() for pid in ids]
    unsolved = {pid for pid in everyone if number(pid) % 3 == 0}  # no chain model solved these
    arms = difficulty_arms(source(curation), candidates, scored_for(everyone, unsolved), per_arm=12, seed=0)
    assert [arm.name for arm in arms] == ["simple", "complex", "advanced"]
    sizes = {len(arm.samples) for arm in arms}
    assert len(sizes) == 1 and sizes.pop() == min(12, *(len(set(ids) - unsolved) for ids in candidates.values()))
    seen: set[str] = set()
    for arm in arms:
        ids = set(arm.problem_ids)
        assert ids <= set(members[arm.name]) and not ids & unsolved
        assert not ids & seen  # bins are disjoint, so arms are
        seen |= ids


def test_difficulty_arms_shrink_together_to_the_scarcest_bin(synthetic_run: SyntheticRun) -> None:
    curation = synthetic_run.curation
    candidates = difficulty_candidates(curation, BINS, per_arm=12, seed=0)
    scarce = set(candidates["advanced"][5:])  # only 5 advanced candidates have a chain
    everyone = [pid for ids in candidates.values() for pid in ids]
    arms = difficulty_arms(source(curation), candidates, scored_for(everyone, scarce), per_arm=12, seed=0)
    assert [len(arm.samples) for arm in arms] == [5, 5, 5]


def test_difficulty_bins_may_not_overlap() -> None:
    bins = [
        {"name": "easy", "solve_rate": [0.4, 1.0], "levels": [1]},
        {"name": "hard", "solve_rate": [0.0, 0.5], "levels": [2]},
    ]
    with pytest.raises(ValueError, match="overlap"):
        DifficultyStudyConfig.model_validate({"problems": 5, "bins": bins})


# ----------------------------------------------------------------------------------------------- size


def test_size_arms_are_nested_subsets_of_the_curated_set(synthetic_run: SyntheticRun) -> None:
    curation = synthetic_run.curation
    curated = {s.id: s for s in curation.curated}
    for seed in (0, 1):
        arms = size_arms(curation, sizes=[5, 10, 20, 30], seed=seed, student="student")
        assert [(arm.name, len(arm.samples)) for arm in arms] == [("n5", 5), ("n10", 10), ("n20", 20), ("n30", 30)]
        for small, large in itertools.pairwise(arms):
            assert set(small.problem_ids) < set(large.problem_ids)
        assert all(curated[s.id] == s for arm in arms for s in arm.samples)  # the curated samples, as they are
    first, other = (size_arms(curation, sizes=[5, 30], seed=s, student="student")[0] for s in (0, 1))
    assert set(first.problem_ids) != set(other.problem_ids)  # each repeat draws its own subsets
    with pytest.raises(LimoError, match=f"the curated set has {CURATED_SIZE} samples"):
        size_arms(curation, sizes=[10, 31], seed=0, student="student")


# ----------------------------------------------------------------------------------------------- selection


def test_selection_arms_are_equal_in_size_and_the_random_arm_is_drawn_after_dedup_and_decontamination(
    synthetic_run: SyntheticRun,
) -> None:
    curation = synthetic_run.curation
    size = selection_size(curation, 20)
    clean = set(kept_by(curation.ledger, "decontaminate"))
    weak_kept = set(kept_by(curation.ledger, "weak_filter"))
    candidates = selection_candidates(curation, size=size, seed=0)
    assert set(candidates) == {"random", "weak_only"}
    assert len(candidates["random"]) == math.ceil(size * OVERSAMPLE)
    assert set(candidates["random"]) <= clean
    assert not set(candidates["random"]) & (DEDUP_DROPS | DECONTAMINATION_DROPS)
    assert set(candidates["weak_only"]) <= weak_kept
    probe = strong_probe(curation, size=size, seed=0)
    assert set(probe) <= clean
    # Measured alone, the strong filter keeps the probed problems with 1..3 successes (those it met in the
    # curation, where the weak filter let them through, and as many again of the others).
    in_band = {pid for pid in probe if 1 <= strong_successes(pid) <= 3}
    candidates["strong_only"] = strong_only_candidates(probe, in_band, size=size)
    assert set(candidates["strong_only"]) <= in_band
    union = [pid for ids in candidates.values() for pid in ids]
    unsolved = {pid for pid in union if number(pid) % 5 == 0}
    arms = selection_arms(source(curation), candidates, scored_for(union, unsolved), size=size, seed=0)
    assert [arm.name for arm in arms] == ["curated", "random", "weak_only", "strong_only"]
    assert {len(arm.samples) for arm in arms} == {size}
    by_name = {arm.name: set(arm.problem_ids) for arm in arms}
    assert by_name["curated"] <= {s.id for s in curation.curated}
    assert by_name["random"] <= clean - unsolved and by_name["weak_only"] <= weak_kept
    assert by_name["strong_only"] <= in_band
    assert reference_arm("selection", list(by_name)) == "curated"


def test_selection_arms_shrink_together_when_an_arm_runs_short(synthetic_run: SyntheticRun) -> None:
    curation = synthetic_run.curation
    candidates = selection_candidates(curation, size=20, seed=3)
    candidates["strong_only"] = candidates["weak_only"][:7]
    union = [pid for ids in candidates.values() for pid in ids]
    arms = selection_arms(source(curation), candidates, scored_for(union), size=20, seed=3)
    assert [len(arm.samples) for arm in arms] == [7, 7, 7, 7]


def test_selection_size_defaults_to_the_curated_set_and_may_not_exceed_it(synthetic_run: SyntheticRun) -> None:
    assert selection_size(synthetic_run.curation, None) == CURATED_SIZE
    with pytest.raises(LimoError, match="more than the curated set's 30 samples"):
        selection_size(synthetic_run.curation, 31)


# ----------------------------------------------------------------------------------------------- backbone


def test_backbone_arms_train_each_student_on_the_same_curated_set(synthetic_run: SyntheticRun) -> None:
    arms = backbone_arms(synthetic_run.curation, students=["student", "weak"], seed=2)
    assert [(arm.name, arm.student, arm.label) for arm in arms] == [
        ("student", "student", "student-s2"),
        ("weak", "weak", "weak-s2"),
    ]
    assert arms[0].samples == arms[1].samples == tuple(synthetic_run.curation.curated)
    with pytest.raises(LimoError, match="two or more students"):
        backbone_arms(synthetic_run.curation, students=["student"], seed=0)


# ----------------------------------------------------------------------------------------------- source


def test_a_folder_without_a_finished_curation_says_which_command_makes_one(tmp_path: Path) -> None:
    with pytest.raises(LimoError, match=r"no finished curation in .*run `limo run` or `limo curate`"):
        read_curation(tmp_path / "curate")
