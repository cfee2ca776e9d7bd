"""chains: each chain model writes `per_model` reasoning chains per problem; each chain is graded.

Problems with at least one correct chain go on; the chains themselves stay in the generation cache
(`curate/chains/generations/<model>/`), and `curate/chains/drawn.json` lists, per model, the cache keys of the
chains these settings ask for: the quality stage scores those and no others. A cache can hold more (a study's
generation folder is filled with every attempt other studies drew for its problems, some with more chains per
problem), and what is scored must depend on this stage's settings alone. Resumable like the filters: a chain
already drawn is never drawn again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from limo_ray.config import SamplingConfig
from limo_ray.curate.context import CurateContext
from limo_ray.curate.filters import engine_inputs
from limo_ray.curate.generations import GenerationStore
from limo_ray.curate.sampling import attempt_keys, build_prompts, log_requests, sample_and_grade
from limo_ray.curate.stage import Decision, SideFile, Stage, StageResult
from limo_ray.engine import EngineSpec
from limo_ray.records import Problem
from limo_ray.runfolder import write_json_atomic

# One generation cache per chain model under it, and the keys of the chains the stage's settings ask for: what the
# quality stage scores. drawn.json is optional to readers: a chains stage completed before it existed has none.
CHAIN_GENERATIONS = SideFile("chains", "generations")
DRAWN_CHAINS = SideFile("chains", "drawn.json", optional=True)


def chain_store(curate_dir: Path, model: str) -> GenerationStore:
    return GenerationStore(CHAIN_GENERATIONS.path(curate_dir) / model)


def write_drawn_chains(curate_dir: Path, keys: Mapping[str, Sequence[str]]) -> None:
    write_json_atomic(DRAWN_CHAINS.path(curate_dir), {model: list(k) for model, k in keys.items()})


def drawn_chain_rows(curate_dir: Path, model: str) -> list[dict[str, Any]]:
    """The cached chains of `model` that the chains stage's settings asked for (every cached one, for a chains
    stage completed before drawn.json was written)."""
    store = chain_store(curate_dir, model)
    path = DRAWN_CHAINS.path(curate_dir)
    if not path.is_file():
        return list(store.rows.values())
    keys = json.loads(path.read_text(encoding="utf-8")).get(model, [])
    return [row for key in keys if (row := store.get(key)) is not None]


@dataclass(frozen=True)
class Chains(Stage):
    name = "chains"
    writes = (CHAIN_GENERATIONS, DRAWN_CHAINS)
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
        asked: dict[str, list[str]] = {}  # per model, the keys of every chain these settings ask for
        for spec in self.engines:
            model = spec.name
            store = chain_store(ctx.curate_dir, model)
            prompts = build_prompts(spec, problems)
            keys = attempt_keys(spec, sampling, prompts, self.per_model)
            asked[model] = [key for p in problems for key in keys[p.id]]
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
        write_drawn_chains(ctx.curate_dir, asked)
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
