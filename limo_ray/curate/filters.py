"""weak_filter and strong_filter: sample a model on each problem in rounds, grade, stop early, decide.

Both stages are one loop with a different stopping rule (`cascade.py`). Per round: the problems still
undecided get the round's attempts in one request each (`n` samples share a prefill), through the engine layer
on Ray Data; outputs are graded in the driver as they stream back and stored at once in the generation cache;
the rule then decides each problem. Attempts already in the cache (an earlier, interrupted run) are never
requested again; each round's requests are logged under `requests/`, so that is checkable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from limo_ray.config import SamplingConfig
from limo_ray.curate.cascade import BandRule, Rule, WeakRule
from limo_ray.curate.context import CurateContext
from limo_ray.curate.generations import GenerationStore
from limo_ray.curate.sampling import attempt_keys, build_prompts, log_requests, sample_and_grade
from limo_ray.curate.stage import Decision, Stage, StageResult
from limo_ray.engine import EngineSpec
from limo_ray.records import Problem


@dataclass(frozen=True)
class DifficultyFilter(Stage):
    """Shared loop of the weak and strong filters: the engine, the rounds' sizes, the sampling and the rule."""

    engine: EngineSpec
    rounds: tuple[int, ...]
    sampling: SamplingConfig
    rule: Rule

    def inputs(self) -> list[str]:
        return engine_inputs(self.engine)

    def resources(self) -> list[dict[str, float]]:
        return self.engine.bundles()

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        rounds, rule, spec = list(self.rounds), self.rule, self.engine
        sampling = self.sampling.model_dump()
        folder = ctx.stage_dir(self.name)
        store = GenerationStore(folder / "generations")
        prompts = build_prompts(spec, problems)
        keys = attempt_keys(spec, sampling, prompts, sum(rounds))
        answers = {p.id: p.answer for p in problems}
        generated_tokens = 0
        timings = []
        for number, size in enumerate(rounds):
            offset = sum(rounds[:number])
            requests = []
            for p in problems:
                drawn = [store.get(k) for k in keys[p.id][:offset]]
                if any(a is None or a["error"] for a in drawn):
                    continue  # an earlier round failed for this problem: it is decided as failed below
                if rule.status([a["correct"] for a in drawn]).verdict != "continue":
                    continue
                missing = [i for i in range(offset, offset + size) if keys[p.id][i] not in store]
                if missing:
                    requests.append(
                        {"problem_id": p.id, "prompt": prompts[p.id], "n": len(missing), "attempt_indices": missing}
                    )
            ctx.log(
                f"[curate] {self.name}: round {number + 1}/{len(rounds)}: {len(requests)} problems x "
                f"up to {size} samples ({spec.name})"
            )
            if requests:
                log_requests(folder / "requests", f"round-{number + 1}", requests)
                stats = sample_and_grade(ctx, self.name, spec, sampling, requests, keys, store, answers, number)
                generated_tokens += stats.tokens
                timings.append({"round": number + 1, **stats.to_dict()})
        kept, decisions = [], []
        total_tokens = 0
        for p in problems:
            attempts = [store.get(k) for k in keys[p.id]]
            drawn = [a for a in attempts if a is not None]
            total_tokens += sum(a["num_tokens"] for a in drawn)
            decision = self._decide(p, rule, attempts, spec.name)
            decisions.append(decision)
            if decision.decision == "kept":
                kept.append(p)
        return StageResult(
            kept,
            decisions,
            tokens=generated_tokens,
            facts={"model": spec.name, "rounds": rounds, "total_tokens": total_tokens, "timings": timings},
        )

    def _decide(self, problem: Problem, rule: Rule, attempts: list[dict[str, Any] | None], model: str) -> Decision:
        # Attempts count in index order up to the first gap: rounds fill indices in order.
        drawn: list[dict[str, Any]] = []
        for attempt in attempts:
            if attempt is None:
                break
            drawn.append(attempt)
        outcomes = [bool(a["correct"]) for a in drawn]
        facts = {
            "model": model,
            "attempts": len(drawn),
            "successes": sum(outcomes),
            "outcomes": outcomes,
            "first_success": outcomes.index(True) if any(outcomes) else None,
            "tokens": sum(a["num_tokens"] for a in drawn),
        }
        errors = [a["error"] for a in drawn if a["error"]]
        if errors:
            return Decision(problem.id, "dropped", "engine_error", {**facts, "error": errors[0]})
        status = rule.status(outcomes)
        if status.verdict == "continue":
            # Only when the rounds did not run to the end (a bug or a removed cache part): never keep silently.
            return Decision(problem.id, "dropped", "undecided", facts)
        return Decision(problem.id, status.verdict, status.reason, facts)


def engine_inputs(spec: EngineSpec) -> list[str]:
    return [spec.model, *([spec.tokenizer] if spec.tokenizer else [])]


@dataclass(frozen=True)
class WeakFilter(DifficultyFilter):
    name = "weak_filter"
    rule: WeakRule


@dataclass(frozen=True)
class StrongFilter(DifficultyFilter):
    name = "strong_filter"
    rule: BandRule
