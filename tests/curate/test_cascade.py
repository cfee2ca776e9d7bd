"""The cascade's stopping rules, replayed over recorded sample streams."""

from __future__ import annotations

import random

from limo_ray.curate.cascade import BandRule, WeakRule, replay


def test_weak_filter_stops_at_first_success_in_rounds_of_one_then_three() -> None:
    rule = WeakRule(attempts=4)
    assert replay(rule, [1, 3], [True, False, False, False]).drawn == 1
    first_round_miss = replay(rule, [1, 3], [False, True, False, False])
    assert (first_round_miss.status.verdict, first_round_miss.status.reason, first_round_miss.drawn) == (
        "dropped",
        "solved_by_weak",
        4,
    )
    never = replay(rule, [1, 3], [False] * 4)
    assert (never.status.verdict, never.drawn) == ("kept", 4)


def test_strong_filter_stops_once_past_the_band_top() -> None:
    rule = BandRule(samples=8, keep_min=1, keep_max=3)
    easy = replay(rule, [4, 4], [True] * 8)
    assert (easy.status.reason, easy.drawn) == ("too_easy", 4)
    in_band = replay(rule, [4, 4], [True, False, False, False, False, True, False, False])
    assert (in_band.status.verdict, in_band.drawn) == ("kept", 8)
    hard = replay(rule, [4, 4], [False] * 8)
    assert (hard.status.reason, hard.drawn) == ("too_hard", 8)


def test_strong_filter_keeps_as_soon_as_the_rest_cannot_leave_the_band() -> None:
    rule = BandRule(samples=8, keep_min=1, keep_max=3)
    one_early = [False, True] + [False] * 6
    # One success in six: two samples left cannot pass 3, so the seventh and eighth are not drawn.
    assert (replay(rule, [1] * 8, one_early).status.verdict, replay(rule, [1] * 8, one_early).drawn) == ("kept", 6)
    two_early = [True, True] + [False] * 6
    assert replay(rule, [1] * 8, two_early).drawn == 7
    # In rounds of four the question is only asked after four and eight samples: nothing is saved.
    assert replay(rule, [4, 4], one_early).drawn == 8
    # Still open: one success after five samples could become four.
    assert rule.status(one_early[:5]).verdict == "continue"


def test_strong_filter_stops_when_the_band_is_out_of_reach() -> None:
    rule = BandRule(samples=32, keep_min=10, keep_max=12)
    result = replay(rule, [8, 8, 8, 8], [False] * 32)
    # After 24 samples with no success, the 8 left cannot reach 10: the last round is not drawn.
    assert (result.status.reason, result.drawn) == ("too_hard", 24)


def test_adaptive_rounds_decide_exactly_as_drawing_everything() -> None:
    """Over random recorded streams, early stopping never changes a decision: it only draws less."""
    rng = random.Random(0)
    weak, band = WeakRule(4), BandRule(8, 1, 3)
    saved = 0
    for _ in range(2000):
        p = rng.random()
        stream = [rng.random() < p for _ in range(8)]
        for rule, rounds, full in ((weak, [1, 3], 4), (band, [4, 4], 8), (band, [1] * 8, 8), (band, [4, 2, 2], 8)):
            adaptive = replay(rule, rounds, stream[:full])
            fixed = replay(rule, [full], stream[:full])
            assert adaptive.status.verdict == fixed.status.verdict
            # The success count recorded with a kept problem stays in the band it was kept for.
            if rule is band and adaptive.status.verdict == "kept":
                assert band.keep_min <= sum(stream[: adaptive.drawn]) <= band.keep_max
            saved += fixed.drawn - adaptive.drawn
    assert saved > 0
