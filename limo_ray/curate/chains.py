"""chains: each chain model writes `per_model` reasoning chains per problem; each chain is graded.

Problems with at least one correct chain go on; the chains themselves stay in the generation cache
(`curate/chains/generations/<model>/`), which the quality stage reads. Resumable like the filters: a chain
already drawn is never drawn again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from limo_ray.config import RunConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.generations import GenerationStore
from limo_ray.curate.sampling import attempt_keys, build_prompts, log_requests, sample_and_grade
from limo_ray.curate.stage import Decision, Resources, Stage, StageResult
from limo_ray.engine import engine_spec
from limo_ray.records import Problem


def chain_store(ctx: CurateContext, model: str) -> GenerationStore:
    return GenerationStore(chain_store_path(ctx.stage_dir(Chains.name), model))


def chain_store_path(folder: Path, model: str) -> Path:
    return folder / "generations" / model


class Chains(Stage):
    name = "chains"
    resources: ClassVar[Resources] = Resources(cpus=1)

    def config_view(self, config: RunConfig) -> dict[str, Any]:
        chains = config.curate.chains
        return {
            "models": {m: config.models[m].model_dump(mode="json") for m in chains.models},
            "per_model": chains.per_model,
            "sampling": chains.sampling.model_dump(mode="json"),
            "prompt": config.prompt.model_dump(mode="json"),
            "seed": config.seed,
        }

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        settings = ctx.config.curate.chains
        sampling = settings.sampling.model_dump()
        answers = {p.id: p.answer for p in problems}
        per_problem: dict[str, dict[str, dict[str, int]]] = {p.id: {} for p in problems}
        tokens = 0
        timings: list[dict[str, object]] = []
        for model in settings.models:
            spec = engine_spec(ctx.config, model, resolve_path=ctx.resolve_path)
            store = chain_store(ctx, model)
            prompts = build_prompts(spec, problems)
            keys = attempt_keys(spec, sampling, prompts, settings.per_model)
            requests = []
            for p in problems:
                missing = [i for i, key in enumerate(keys[p.id]) if key not in store]
                if missing:
                    requests.append(
                        {"problem_id": p.id, "prompt": prompts[p.id], "n": len(missing), "attempt_indices": missing}
                    )
            ctx.log(f"[curate] chains: {model}: {len(requests)} problems x up to {settings.per_model} chains")
            if requests:
                log_requests(ctx.stage_dir(self.name) / "requests", model, requests)
                stats = sample_and_grade(ctx, self.name, spec, sampling, requests, keys, store, answers, 0)
                tokens += stats.tokens
                timings.append({"model": model, **stats.to_dict()})
            for p in problems:
                drawn = [store.get(k) for k in keys[p.id]]
                per_problem[p.id][model] = {
                    "drawn": sum(a is not None for a in drawn),
                    "correct": sum(bool(a and a["correct"]) for a in drawn),
                }
        kept, decisions = [], []
        for p in problems:
            facts = {"models": per_problem[p.id]}
            if any(m["correct"] for m in per_problem[p.id].values()):
                kept.append(p)
                decisions.append(Decision(p.id, "kept", "has_correct_chain", facts))
            else:
                decisions.append(Decision(p.id, "dropped", "no_correct_chain", facts))
        return StageResult(kept, decisions, tokens=tokens, facts={"models": list(settings.models), "timings": timings})
