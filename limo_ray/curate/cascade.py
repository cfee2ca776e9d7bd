"""The stopping rules of the weak/strong cascade, as pure functions of a problem's outcomes so far.

Weak filter (paper: Qwen2.5-Math-7B-Instruct, k=4): a problem is dropped at its first success; one it never
solves in k attempts is kept (it is not easy). Strong filter (paper: R1-Distill-Qwen-32B, n=32): keep a problem
whose success count lands in [keep_min, keep_max]; stop sampling it as soon as the count passes keep_max (too
easy), once even all remaining samples could not lift it to keep_min (too hard), or once it is in the band and
the remaining samples could not lift it past keep_max (kept: with n=8 and 1..3, one success in the first six
samples settles it).

Each rule stops exactly when no outcome still to come could change its decision. Drawing one sample per round,
no stopping rule that decides as drawing everything does can draw less; coarser rounds trade some of those
savings for fewer passes over the engine (`replay` with rounds of one gives that lower bound for a recorded
stream).

Samples are drawn in rounds (weak: 1 then 3): within a round a problem's samples share one request (one
prefill), so a rule is applied between rounds, to the outcomes of every round drawn so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["continue", "kept", "dropped"]


@dataclass(frozen=True)
class Status:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class WeakRule:
    attempts: int

    def status(self, outcomes: Sequence[bool]) -> Status:
        if any(outcomes):
            return Status("dropped", "solved_by_weak")
        if len(outcomes) >= self.attempts:
            return Status("kept", "unsolved_by_weak")
        return Status("continue", "")


@dataclass(frozen=True)
class BandRule:
    samples: int
    keep_min: int
    keep_max: int

    def status(self, outcomes: Sequence[bool]) -> Status:
        successes = sum(outcomes)
        if successes > self.keep_max:
            return Status("dropped", "too_easy")
        remaining = self.samples - len(outcomes)
        if successes + remaining < self.keep_min:
            return Status("dropped", "too_hard")
        if successes >= self.keep_min and successes + remaining <= self.keep_max:
            return Status("kept", "in_band")  # whatever the remaining samples give, the count stays in the band
        return Status("continue", "")


Rule = WeakRule | BandRule


@dataclass(frozen=True)
class Replay:
    status: Status
    drawn: int


def replay(rule: Rule, rounds: Sequence[int], stream: Sequence[bool]) -> Replay:
    """Apply `rule` round by round to a recorded stream of outcomes: the decision and how many were drawn."""
    drawn = 0
    for size in rounds:
        status = rule.status(stream[:drawn])
        if status.verdict != "continue":
            return Replay(status, drawn)
        drawn = min(drawn + size, len(stream))
    return Replay(rule.status(stream[:drawn]), drawn)
