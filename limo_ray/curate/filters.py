"""weak_filter and strong_filter: sample a model on each problem in rounds, grade, stop early, decide.

Both stages are one loop with a different stopping rule (`cascade.py`). Per round: the problems still
undecided get the round's attempts in one request each (`n` samples share a prefill), through the engine layer
on Ray Data; outputs are graded in the driver as they stream back and stored at once in the generation cache;
the rule then decides each problem. Attempts already in the cache (an earlier, interrupted run) are never
requested again; each round's requests are logged under `requests/`, so that is checkable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from limo_ray.config import RunConfig, SamplingConfig
from limo_ray.curate.cascade import BandRule, Rule, WeakRule
from limo_ray.curate.context import CurateContext
from limo_ray.curate.generations import GenerationStore, attempt_key
from limo_ray.curate.stage import Decision, Resources, Stage, StageResult
from limo_ray.engine import EngineSpec, engine_spec, generate
from limo_ray.grading import Grader
from limo_ray.records import Problem
from limo_ray.runfolder import write_jsonl_atomic

# Rows per Ray Data block / engine batch: small enough that finished work reaches the cache often.
REQUEST_BATCH = 64


class DifficultyFilter(Stage):
    """Shared loop of the weak and strong filters; subclasses give the settings and the rule."""

    resources: ClassVar[Resources] = Resources(cpus=1)

    def settings(self, config: RunConfig) -> tuple[str, list[int], SamplingConfig]:
        raise NotImplementedError

    def rule(self, config: RunConfig) -> Rule:
        raise NotImplementedError

    def config_view(self, config: RunConfig) -> dict[str, Any]:
        model, rounds, sampling = self.settings(config)
        return {
            "model": config.models[model].model_dump(mode="json"),
            "rounds": rounds,
            "sampling": sampling.model_dump(mode="json"),
            "rule": repr(self.rule(config)),
            "system": config.prompt.model_dump(mode="json"),
            "seed": config.seed,
        }

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        model_name, rounds, sampling_config = self.settings(ctx.config)
        rule = self.rule(ctx.config)
        spec = engine_spec(ctx.config, model_name, resolve_path=ctx.resolve_path)
        sampling = sampling_config.model_dump()
        folder = ctx.stage_dir(self.name)
        store = GenerationStore(folder / "generations")
        prompts = _prompts(spec, problems)
        keys = {
            p.id: [attempt_key(prompts[p.id], spec.model, sampling, spec.seed, i) for i in range(sum(rounds))]
            for p in problems
        }
        generated_tokens = 0
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
                _log_requests(folder / "requests", number, requests)
                generated_tokens += self._draw(ctx, spec, sampling, requests, number, keys, store, problems)
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
            facts={"model": spec.name, "rounds": rounds, "total_tokens": total_tokens},
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

    def _draw(
        self,
        ctx: CurateContext,
        spec: EngineSpec,
        sampling: dict[str, Any],
        requests: list[dict[str, Any]],
        round_number: int,
        keys: dict[str, list[str]],
        store: GenerationStore,
        problems: Sequence[Problem],
    ) -> int:
        import ray.data

        from limo_ray.engine import init_ray

        init_ray(ctx.config.cluster)
        answers = {p.id: p.answer for p in problems}
        grader = Grader()
        blocks = max(1, math.ceil(len(requests) / REQUEST_BATCH))
        ds = ray.data.from_items(requests, override_num_blocks=blocks)
        out = generate(ds, spec, sampling, concurrency=self.concurrency(ctx), batch_size=REQUEST_BATCH)
        tokens = 0
        start = time.perf_counter()
        done = 0
        for batch in out.iter_batches(batch_size=None, batch_format="pandas"):
            rows = []
            for record in batch.to_dict("records"):
                pid = record["problem_id"]
                indices = list(record["attempt_indices"])
                completions = list(record["completions"])
                counts = list(record["completion_tokens"])
                reasons = list(record["finish_reasons"])
                for j, index in enumerate(indices):
                    row = {
                        "key": keys[pid][index],
                        "problem_id": pid,
                        "attempt_index": int(index),
                        "round": round_number,
                        "model": spec.name,
                    }
                    if record["error"] or j >= len(completions):
                        rows.append(
                            {
                                **row,
                                "response": "",
                                "num_tokens": 0,
                                "finish_reason": None,
                                "correct": False,
                                "extracted": None,
                                "grade_reason": None,
                                "error": record["error"] or "engine returned fewer samples than asked",
                            }
                        )
                        continue
                    verdict = grader.grade(completions[j], answers[pid])
                    tokens += int(counts[j])
                    rows.append(
                        {
                            **row,
                            "response": completions[j],
                            "num_tokens": int(counts[j]),
                            "finish_reason": reasons[j],
                            "correct": verdict.correct,
                            "extracted": verdict.extracted,
                            "grade_reason": verdict.reason,
                            "error": None,
                        }
                    )
            store.append(rows)
            graded = [r for r in rows if r["error"] is None]
            ctx.metrics.tokens(
                self.name,
                spec.name,
                sum(r["num_tokens"] for r in graded),
                sum(r["correct"] for r in graded),
                len(graded),
            )
            done += len(batch)
            elapsed = time.perf_counter() - start
            ctx.log(
                f"[curate] {self.name}: {done}/{len(requests)} requests, {tokens} tokens, "
                f"{tokens / max(elapsed, 1e-9):.0f} tok/s"
            )
        return tokens

    def concurrency(self, ctx: CurateContext) -> int:
        """Engine actors for this stage: as many as fit the cluster (one on a laptop)."""
        cluster = ctx.config.cluster
        if cluster.gpus_per_node == 0:
            return 1
        spec = engine_spec(ctx.config, self.settings(ctx.config)[0], resolve_path=ctx.resolve_path)
        return max(1, (cluster.num_nodes * cluster.gpus_per_node) // spec.world_size)


class WeakFilter(DifficultyFilter):
    name = "weak_filter"

    def settings(self, config: RunConfig) -> tuple[str, list[int], SamplingConfig]:
        weak = config.curate.weak
        return weak.model, list(weak.rounds), weak.sampling

    def rule(self, config: RunConfig) -> Rule:
        return WeakRule(config.curate.weak.attempts)


class StrongFilter(DifficultyFilter):
    name = "strong_filter"

    def settings(self, config: RunConfig) -> tuple[str, list[int], SamplingConfig]:
        strong = config.curate.strong
        return strong.model, list(strong.rounds), strong.sampling

    def rule(self, config: RunConfig) -> Rule:
        strong = config.curate.strong
        return BandRule(strong.samples, strong.keep_min, strong.keep_max)


def _prompts(spec: EngineSpec, problems: Sequence[Problem]) -> dict[str, str]:
    """Chat-templated prompts, built once in the driver: the same text keys the cache and goes to the engine."""
    from transformers import AutoTokenizer

    from limo_ray.engine import chat_messages

    tokenizer = AutoTokenizer.from_pretrained(
        spec.tokenizer or spec.model, revision=spec.revision, trust_remote_code=spec.trust_remote_code
    )
    return {
        p.id: tokenizer.apply_chat_template(
            chat_messages(p.problem, spec.system_prompt),
            tokenize=False,
            add_generation_prompt=True,
            chat_template=spec.chat_template,
        )
        for p in problems
    }


def _log_requests(folder: Path, round_number: int, requests: list[dict[str, Any]]) -> None:
    rows = [{"problem_id": r["problem_id"], "attempt_indices": r["attempt_indices"]} for r in requests]
    write_jsonl_atomic(folder / f"round-{round_number + 1}-{time.time_ns()}.jsonl", rows)
