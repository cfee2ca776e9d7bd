"""chains: each chain model writes `per_model` reasoning chains per problem; each chain is graded.

Problems with at least one correct chain go on; the chains themselves stay in the generation cache
(`curate/chains/generations/<model>/`), which the quality stage reads. Resumable like the filters: a chain
already drawn is never drawn again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from limo_ray.config import SamplingConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.filters import engine_inputs
from limo_ray.curate.generations import GenerationStore
from limo_ray.curate.sampling import attempt_keys, build_prompts, log_requests, sample_and_grade
from limo_ray.curate.stage import Decision, SideFile, Stage, StageResult
from limo_ray.engine import EngineSpec
from limo_ray.records import Problem

# One generation cache per chain model under it: what the quality stage scores.
CHAIN_GENERATIONS = SideFile("chains", "generations")


def chain_store(curate_dir: Path, model: str) -> GenerationStore:
    return GenerationStore(CHAIN_GENERATIONS.path(curate_dir) / model)


@dataclass(frozen=True)
class Chains(Stage):
    name = "chains"
    writes = (CHAIN_GENERATIONS,)
    engines: tuple[EngineSpec, ...]  # one per chain model, in the config's order
    per_model: int
    sampling: SamplingConfig

    def inputs(self) -> list[str]:
        return [path for spec in self.engines for path in engine_inputs(spec)]

    def resources(self) -> list[dict[str, float]]:
        # Chain models run one after another: a worker holds one engine at a time.
        return max((spec.bundles() for spec in self.engines), key=len, default=[])

    def run(self, ctx: CurateContext, problems: Sequence[Problem]) -> StageResult:
        sampling = self.sampling.model_dump()
        answers = {p.id: p.answer for p in problems}
        per_problem: dict[str, dict[str, dict[str, int]]] = {p.id: {} for p in problems}
        tokens = 0
        timings: list[dict[str, object]] = []
        for spec in self.engines:
            model = spec.name
            store = chain_store(ctx.curate_dir, model)
            prompts = build_prompts(spec, problems)
            keys = attempt_keys(spec, sampling, prompts, self.per_model)
            requests = []
            for p in problems:
                missing = [i for i, key in enumerate(keys[p.id]) if key not in store]
                if missing:
                    requests.append(
                        {"problem_id": p.id, "prompt": prompts[p.id], "n": len(missing), "attempt_indices": missing}
                    )
            ctx.log(f"[curate] chains: {model}: {len(requests)} problems x up to {self.per_model} chains")
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
        models = [spec.name for spec in self.engines]
        return StageResult(kept, decisions, tokens=tokens, facts={"models": models, "timings": timings})
