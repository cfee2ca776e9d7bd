"""Grader speed: the project grader vs plain math-verify on the 500 MATH500 (solution, answer) pairs.

Workload: every MATH500 gold `solution` graded against its `answer`, one core (CPU affinity pinned to one
CPU), in the calling thread. (a) `limo_ray.grading.grade(solution, answer)`; (b) plain math-verify on the
full text, as its README shows it: `verify(parse(f"${answer}$"), parse(solution))`. Warm-up one round of
each, then at least 5 interleaved pairs (A B A B ...); the project grader's gold-parse cache is cleared
before each of its rounds so no round profits from the one before. Prints the median of each and their
ratio, last line worded as issue 2 gives it.

    .venv/bin/python bench/grader_speed.py --data ../shared/data/math500/test.jsonl --pairs 5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

from math_verify import parse, verify

from limo_ray.grading import grade
from limo_ray.grading.symbolic import _parse as cached_gold_parse

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500" / "test.jsonl"


def project_round(pairs: list[tuple[str, str]]) -> tuple[float, int]:
    cached_gold_parse.cache_clear()
    start = time.perf_counter()
    correct = sum(grade(solution, answer).correct for solution, answer in pairs)
    return len(pairs) / (time.perf_counter() - start), correct


def plain_round(pairs: list[tuple[str, str]]) -> tuple[float, int]:
    start = time.perf_counter()
    correct = sum(bool(verify(parse(f"${answer}$"), parse(solution))) for solution, answer in pairs)
    return len(pairs) / (time.perf_counter() - start), correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, default=5, help="interleaved A/B pairs after warm-up (>= 5)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    rows = [json.loads(line) for line in args.data.open()]
    pairs = [(r["solution"], r["answer"]) for r in rows]
    print(f"workload: {len(pairs)} MATH500 (solution, answer) pairs, one core, {args.pairs} pairs after warm-up")
    project_round(pairs)
    plain_round(pairs)
    ours, theirs = [], []
    for i in range(args.pairs):
        rate_a, correct_a = project_round(pairs)
        rate_b, correct_b = plain_round(pairs)
        ours.append(rate_a)
        theirs.append(rate_b)
        print(
            f"pair {i + 1}: project {rate_a:8.0f}/s ({correct_a} correct)   "
            f"math-verify {rate_b:6.1f}/s ({correct_b} correct)"
        )
    x, y = statistics.median(ours), statistics.median(theirs)
    print(f"grader verdicts-per-second: {x:.0f}, plain math-verify: {y:.1f}, ratio: {x / y:.1f}")


if __name__ == "__main__":
    main()
