"""The calibration table and its checks, from verdict rows (no engines)."""

from __future__ import annotations

import pytest

from limo_ray.toy.report import benchmark_means, calibration_checks, default_runs, level_table


def _rows(label: str, level: int, outcomes: list[list[bool]]) -> list[dict]:
    return [
        {"label": label, "problem_id": f"p{level}-{i}", "level": level, "correct": verdicts}
        for i, verdicts in enumerate(outcomes)
    ]


def test_level_table_counts_any_mean_and_band_per_level() -> None:
    rows = _rows("weak", 1, [[True, False, False, False], [False] * 4])
    rows += _rows("strong", 1, [[True] * 8, [True, True] + [False] * 6])
    rows += _rows("strong", 5, [[False] * 8, [True] + [False] * 7, [True] * 4 + [False] * 4])
    rows += _rows("student", 5, [[True], [False], [False]])
    table = {row.level: row for row in level_table(rows)}
    assert table[1].problems == 2 and table[5].problems == 3
    assert table[1].weak_any == 0.5 and table[1].weak_mean == 0.125
    assert table[1].strong_mean == pytest.approx((1 + 0.25) / 2) and table[1].strong_band == 0.5
    assert table[5].strong_band == pytest.approx(1 / 3)  # one of three has 1..3 of 8 right; 4 of 8 is outside
    assert table[5].strong_any == pytest.approx(2 / 3)
    assert table[5].weak_any is None and table[5].student_greedy == pytest.approx(1 / 3)
    assert table[3].problems == 0 and table[3].strong_mean is None


def test_checks_pass_on_a_calibrated_world_and_name_what_fails() -> None:
    def world(weak_l1: float, weak_l5: float) -> list[dict]:
        rows = []
        for level, weak_hits, strong_hits in ((1, weak_l1, 7), (2, 0.7, 6), (3, 0.5, 5), (4, 0.3, 3), (5, weak_l5, 2)):
            hits = round(weak_hits * 10)
            rows += _rows("weak", level, [[True, False, False, False]] * hits + [[False] * 4] * (10 - hits))
            rows += _rows("strong", level, [[True] * strong_hits + [False] * (8 - strong_hits)] * 10)
        rows += _rows("strong_greedy", 1, [[True]] * 6 + [[False]] * 4)
        rows += _rows("student", 1, [[True]] * 2 + [[False]] * 8)
        return rows

    good = world(0.9, 0.1)
    checks = calibration_checks(level_table(good), benchmark_means(good), "full")
    assert [ok for _, ok, _ in checks] == [True] * len(checks) and len(checks) == 6
    bad = world(0.7, 0.3)
    failed = {name for name, ok, _ in calibration_checks(level_table(bad), benchmark_means(bad), "full") if not ok}
    assert failed == {
        "weak solves >= 80% of level 1 within its attempts",
        "weak solves <= 20% of level 5 within its attempts",
    }


def test_test_size_band_check_needs_thirty_percent_of_hard_problems_in_the_band() -> None:
    def world(in_band_per_level: int) -> list[dict]:
        rows = []
        for level in (1, 2, 3, 4, 5):
            rows += _rows("weak", level, [[level == 1, False, False, False]] * 10)
            if level < 4:
                rows += _rows("strong", level, [[True] * 6 + [False] * 2] * 10)
            else:  # in the band (2 of 8 right) or out of it (none right)
                hard = [[True] * 2 + [False] * 6] * in_band_per_level + [[False] * 8] * (10 - in_band_per_level)
                rows += _rows("strong", level, hard)
        return rows

    def failed(rows: list[dict]) -> set[str]:
        return {name for name, ok, _ in calibration_checks(level_table(rows), benchmark_means(rows), "test") if not ok}

    assert failed(world(4)) == set()  # 0.40 of levels 4-5
    assert failed(world(2)) == {"band filter keeps >= 30% of levels 4-5"}  # 0.20 would have passed `> 0`


def test_test_size_measures_only_the_filter_models() -> None:
    assert [r.label for r in default_runs("test")] == ["weak", "strong"]
    full = default_runs("full")
    assert [(r.label, r.n, r.temperature) for r in full] == [
        ("weak", 4, 0.7),
        ("strong", 8, 0.7),
        ("strong_greedy", 1, 0.0),
        ("student", 1, 0.0),
    ]
