"""Sample a model on problems through the engine layer, grade each sample, and store it at once.

Shared by the difficulty filters and the chain generation: requests (problem, the attempt indices still
missing) go to the run's engine actors (`ctx.engines`, alive across rounds and stages on the same model) with
`n = len(indices)` so the samples share one prefill; results are graded in the driver as they stream back and
appended to the generation cache batch by batch, so an interrupted run loses at most the batches in flight.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from limo_ray.curate.context import CurateContext
from limo_ray.curate.generations import GenerationStore, attempt_key
from limo_ray.engine import EngineSpec, chat_messages, init_ray
from limo_ray.engine.placement import engine_replicas
from limo_ray.grading import Grader
from limo_ray.records import Problem
from limo_ray.runfolder import write_jsonl_atomic

# Sequences (requests x samples) per engine batch. Large enough that the engine stays busy
# between batches (a batch is one synchronous `generate` call: short answers in small batches left it idle
# most of the time), small enough that finished work reaches the cache every few seconds to a minute.
SEQUENCES_PER_BATCH = 1024


def request_batch_size(requests: Sequence[Mapping[str, Any]]) -> int:
    """Requests per batch so that a batch holds about SEQUENCES_PER_BATCH sequences."""
    samples = max((int(r.get("n", 1)) for r in requests), default=1)
    return max(16, SEQUENCES_PER_BATCH // max(samples, 1))


def build_prompts(spec: EngineSpec, problems: Sequence[Problem]) -> dict[str, str]:
    """Chat-templated prompts, built once in the driver: the same text keys the cache and goes to the engine."""
    from transformers import AutoTokenizer

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


def attempt_keys(
    spec: EngineSpec, sampling: Mapping[str, Any], prompts: Mapping[str, str], count: int
) -> dict[str, list[str]]:
    return {
        pid: [attempt_key(prompt, spec.model, sampling, spec.seed, i) for i in range(count)]
        for pid, prompt in prompts.items()
    }


def log_requests(folder: Path, label: str, requests: Sequence[Mapping[str, Any]]) -> None:
    """What was asked of the engine, per round: the audit trail that shows no finished sample is redrawn."""
    rows = [{"problem_id": r["problem_id"], "attempt_indices": list(r["attempt_indices"])} for r in requests]
    write_jsonl_atomic(folder / f"{label}-{time.time_ns()}.jsonl", rows)


@dataclass(frozen=True)
class RoundStats:
    """One `sample_and_grade` call: what it generated and where its time went (engine start vs generation)."""

    requests: int
    tokens: int
    engine_start_s: float  # from the call to the first engine reporting ready
    generate_s: float  # from the first engine ready to the last result graded and stored
    started_at: float  # wall-clock (time.time) bounds, for timelines and benches
    engine_ready_at: float
    finished_at: float
    # Ray node ids of the engine actors that served the round (more than the pool's size if one was replaced).
    engine_nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def sample_and_grade(
    ctx: CurateContext,
    stage: str,
    spec: EngineSpec,
    sampling: Mapping[str, Any],
    requests: list[dict[str, Any]],
    keys: Mapping[str, list[str]],
    store: GenerationStore,
    answers: Mapping[str, str],
    round_number: int,
) -> RoundStats:
    """Draw every request's missing attempts, grade and store them."""
    init_ray(ctx.cluster)
    started_at = time.time()
    grader = Grader()
    batch_size = request_batch_size(requests)
    cluster = ctx.cluster
    pool = ctx.engines.pool(
        spec,
        engine_replicas(spec, cluster),
        stage=f"curate.{stage}",
        gpus_per_node=cluster.gpus_per_node,
        placement_timeout_s=cluster.placement_timeout_s,
        node_resources=cluster.node_resources.engines,
    )
    replaced_before = pool.replaced
    batches = (
        {key: [r[key] for r in requests[i : i + batch_size]] for key in requests[0]}
        for i in range(0, len(requests), batch_size)
    )
    outputs = pool.generate(batches, sampling)
    # An engine that was already up (an earlier round or stage on this model) started no later than this call.
    ready_at = max(started_at, min(pool.ready_times()))
    nodes = pool.node_ids()
    ctx.log(f"[curate] {stage}: {spec.name} engine(s) on node(s) {', '.join(n[:12] for n in nodes)}")
    tokens = done = 0
    start = time.perf_counter()
    for out in outputs:
        rows = []
        for i in range(len(out["problem_id"])):
            rows += _graded_rows({k: v[i] for k, v in out.items()}, keys, answers, grader, spec.name, round_number)
        store.append(rows)
        graded = [r for r in rows if r["error"] is None]
        batch_tokens = sum(r["num_tokens"] for r in graded)
        tokens += batch_tokens
        ctx.metrics.tokens(stage, spec.name, batch_tokens, sum(r["correct"] for r in graded), len(graded))
        done += len(out["problem_id"])
        elapsed = time.perf_counter() - start
        ctx.log(
            f"[curate] {stage}: {done}/{len(requests)} requests, {tokens} tokens, "
            f"{tokens / max(elapsed, 1e-9):.0f} tok/s"
        )
    if pool.replaced > replaced_before:
        nodes += [n for n in pool.node_ids() if n not in nodes]
        ctx.log(
            f"[curate] {stage}: {pool.replaced - replaced_before} engine actor(s) failed and were replaced; "
            "their batches were sent again"
        )
    finished_at = time.time()
    return RoundStats(
        requests=len(requests),
        tokens=tokens,
        engine_start_s=ready_at - started_at,
        generate_s=finished_at - ready_at,
        started_at=started_at,
        engine_ready_at=ready_at,
        finished_at=finished_at,
        engine_nodes=nodes,
    )


def _graded_rows(
    record: Mapping[str, Any],
    keys: Mapping[str, list[str]],
    answers: Mapping[str, str],
    grader: Grader,
    model: str,
    round_number: int,
) -> list[dict[str, Any]]:
    pid = record["problem_id"]
    completions = list(record["completions"])
    counts = list(record["completion_tokens"])
    reasons = list(record["finish_reasons"])
    rows = []
    for j, index in enumerate(record["attempt_indices"]):
        row: dict[str, Any] = {
            "key": keys[pid][int(index)],
            "problem_id": pid,
            "attempt_index": int(index),
            "round": round_number,
            "model": model,
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
    return rows
