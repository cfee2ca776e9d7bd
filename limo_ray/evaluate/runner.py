"""`run_eval`: every benchmark item, every sample, asked of an endpoint URL, graded, cached, reported.

The evaluator is a client of a URL and nothing more: it never starts or imports the server, so the same run
measures a local Serve app, a RayService on a cluster or any OpenAI-compatible endpoint. Per item it sends the
paper's prompt (the run's system prompt + the problem as the user message) once with `n` = the samples still
missing, so the samples share one prefill; decoding comes from the registry (the paper's) unless the run
overrides it. Requests run `eval.concurrency` at a time; busy or failed requests are retried with backoff.

Every graded answer is appended to `eval/samples.jsonl` at once, so a killed run loses only what was in
flight, and a re-run asks only for what is missing (nothing finished is asked again). A request refused for
good (4xx: e.g. a prompt longer than the model's context) is recorded as an answered, wrong sample with its
error; requests that still fail after every retry are left missing, and the run says so and stops before the
report, so the numbers never silently cover fewer items than the benchmark has.

Progress also goes out as Ray metrics where Ray runs (requests, graded samples, a running pass@1:
`telemetry.py`), for the Grafana dashboard in cluster/grafana/.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limo_ray.benchmarks import BenchmarkRegistry
from limo_ray.config import DecodingConfig, RunConfig
from limo_ray.engine.actor import chat_messages
from limo_ray.errors import LimoError
from limo_ray.evaluate.client import ChatClient, Completion, RequestFailed, RetryPolicy
from limo_ray.evaluate.judge import EndpointJudge, Judge
from limo_ray.evaluate.report import Report, build_report, write_report
from limo_ray.evaluate.samples import SAMPLES_FILE, SampleStore, sample_key
from limo_ray.evaluate.telemetry import EvalMetrics
from limo_ray.grading import Grader, Verdict, default_grader

EVAL_DIR = "eval"


@dataclass(frozen=True)
class ItemPlan:
    """One benchmark item for one checkpoint: what to send and the cache key of each sample."""

    checkpoint: str
    benchmark: str
    item: str
    problem: str
    gold: str
    grading: str
    messages: list[dict[str, str]]
    decoding: DecodingConfig
    max_tokens: int
    keys: list[str]
    checkpoint_id: str  # what the weights are, beside the name (`run_eval`'s checkpoint_ids)


@dataclass
class RunStats:
    requests: int = 0
    reused: int = 0
    generated: int = 0
    regraded: int = 0
    refused: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation: which endpoint and models, which benchmarks, who judges, how the report is ordered.

    `endpoint_url` None: report from the run folder's cached answers only (a sample not there is an error).
    `benchmarks`: None = `eval.benchmarks`. `models`: the served name(s) to evaluate; None = every model the
    endpoint lists. `judge_url` / `judge_model`: the endpoint and model that grade judge-mode benchmarks
    (`judge_model` defaults to that endpoint's first model). `data_root` overrides `benchmarks.data_root`.
    `report_order`: checkpoint names in the order the report lists them (the first is the baseline of the
    paired comparisons); by default this call's models, then earlier ones. `checkpoint_ids`: served name ->
    what the weights are (see `sample_key`); without it the name alone keys the cache.
    """

    endpoint_url: str | None
    benchmarks: Sequence[str] | None = None
    models: str | Sequence[str] | None = None
    api_key: str | None = None
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = None
    data_root: str | None = None
    report_order: Sequence[str] | None = None
    checkpoint_ids: Mapping[str, str] | None = None


def run_eval(
    config: RunConfig, request: EvalRequest, run_dir: str | Path, progress: Callable[[str], None] | None = None
) -> Report:
    """Evaluate what `request` names and write the report into `run_dir/eval`; see the module doc."""
    return asyncio.run(run_eval_async(config, request, run_dir, progress))


def unanswered(
    config: RunConfig,
    run_dir: str | Path,
    checkpoint_ids: Mapping[str, str],
    benchmarks: Sequence[str] | None = None,
) -> int:
    """Samples of these checkpoints (name -> identity) not yet answered and graded in the run folder: at 0,
    `run_eval(endpoint_url=None, ...)` reports them and nothing needs to be served."""
    registry = BenchmarkRegistry.from_config(config.benchmarks)
    names = list(benchmarks or config.eval.benchmarks)
    plans = plan_items(config, registry, names, list(checkpoint_ids), config.benchmarks.data_root, checkpoint_ids)
    path = Path(run_dir) / EVAL_DIR / SAMPLES_FILE
    if not path.is_file():
        return sum(len(plan.keys) for plan in plans)
    with SampleStore(path) as store:
        return _unfinished_samples(plans, store)


async def run_eval_async(
    config: RunConfig, request: EvalRequest, run_dir: str | Path, progress: Callable[[str], None] | None = None
) -> Report:
    say = progress or (lambda _line: None)
    registry = BenchmarkRegistry.from_config(config.benchmarks)
    names = list(request.benchmarks or config.eval.benchmarks)
    if not names:
        raise LimoError("no benchmarks to evaluate: list them under eval.benchmarks or pass some")
    selected = registry.select(names)
    eval_config = config.eval
    retry = RetryPolicy(retries=eval_config.retries)
    offline = request.endpoint_url is None
    client = ChatClient(
        request.endpoint_url or "", request.api_key, eval_config.request_timeout_s, eval_config.concurrency, retry
    )
    judge_url, checkpoint_ids = request.judge_url, request.checkpoint_ids
    live = EvalMetrics()
    judge_client: ChatClient | None = None
    try:
        if offline and not request.models:
            raise LimoError("a report from cached answers needs the checkpoint names")
        checkpoints = await _checkpoints(client, request.models)
        judge: Judge | None = None
        if any(b.grading == "judge" for b in selected) and not offline:
            if judge_url is None:
                judged = ", ".join(b.name for b in selected if b.grading == "judge")
                raise LimoError(f"{judged}: graded by an LLM judge: give a judge endpoint URL (and judge model)")
            judge_client = ChatClient(
                judge_url, request.judge_api_key, eval_config.request_timeout_s, 16, retry, seed=1
            )
            judge = EndpointJudge(judge_client, request.judge_model or (await judge_client.models())[0])
        eval_dir = Path(run_dir) / EVAL_DIR
        with SampleStore(eval_dir / SAMPLES_FILE) as store:
            # Checkpoints evaluated earlier in this run folder join the report (and the comparison) when every
            # one of their samples for these benchmarks and settings is there.
            earlier = sorted({str(r.get("checkpoint")) for r in store.rows.values()} - set(checkpoints))
            # An earlier checkpoint is keyed by the identity its answers were stored under (the latest one).
            stored_ids = {
                str(r.get("checkpoint")): r.get("checkpoint_id") or r.get("checkpoint") for r in store.rows.values()
            }
            checkpoint_ids = {**{name: str(stored_ids[name]) for name in earlier}, **(checkpoint_ids or {})}
            ordered = [*checkpoints, *earlier]
            if request.report_order:  # the report's first checkpoint is the one the others are compared against
                rank = {name: i for i, name in enumerate(request.report_order)}
                ordered.sort(key=lambda name: rank.get(name, len(rank)))
            root = request.data_root or config.benchmarks.data_root
            all_plans = plan_items(config, registry, names, ordered, root, checkpoint_ids)
            plans = [p for p in all_plans if p.checkpoint in checkpoints]
            if offline and (missing := _unfinished_samples(plans, store)):
                raise LimoError(
                    f"{missing} samples are not in {eval_dir / SAMPLES_FILE} yet: an endpoint must answer them"
                )
            stats = await _run_plans(plans, store, client, judge, default_grader(), eval_config.concurrency, say, live)
            rows = {key: store.get(key) for p in all_plans for key in p.keys}
            complete = {p.checkpoint for p in all_plans} - {
                p.checkpoint for p in all_plans if any(_unfinished(rows[key]) for key in p.keys)
            }
            reported = [p for p in all_plans if p.checkpoint in checkpoints or p.checkpoint in complete]
    finally:
        await client.http.aclose()
        if judge_client is not None:
            await judge_client.http.aclose()
    say(
        f"eval: {stats.requests} requests ({client.counts['retries']} retries, {client.counts['busy']} busy), "
        f"{stats.generated} samples answered now, {stats.reused} reused, {stats.refused} refused (4xx)"
    )
    if stats.failed:
        raise LimoError(
            f"{len(stats.failed)} requests still failed after {eval_config.retries} retries (first: "
            f"{stats.failed[0]}); every answer so far is in {eval_dir / SAMPLES_FILE}: re-run to ask only for the rest"
        )
    report = build_report(reported, rows, registry, names, seed=config.seed)
    live.report(report.data["checkpoints"])
    return write_report(report, eval_dir)


async def _checkpoints(client: ChatClient, model_name: str | Sequence[str] | None) -> list[str]:
    if isinstance(model_name, str):
        return [model_name]
    if model_name:
        return list(model_name)
    try:
        served = await client.models()
    except RequestFailed as exc:
        raise LimoError(f"cannot list the endpoint's models at {client.base_url}/v1/models: {exc}") from None
    if not served:
        raise LimoError(f"the endpoint at {client.base_url} serves no models")
    return served


def plan_items(
    config: RunConfig,
    registry: BenchmarkRegistry,
    names: Sequence[str],
    checkpoints: Sequence[str],
    data_root: str | None,
    checkpoint_ids: Mapping[str, str] | None = None,
) -> list[ItemPlan]:
    """Every (checkpoint, benchmark, item) with its prompt, decoding and per-sample cache keys."""
    ids = checkpoint_ids or {}
    plans = []
    for name in names:
        loaded = registry.load(name, data_root)
        decoding = registry.decoding_for(name, config.eval)
        seen: Counter[str] = Counter()
        for problem in loaded.result.problems:
            seen[problem.id] += 1
            # Two identical problems in one file would share an id; the second gets its line as a suffix.
            item = problem.id if seen[problem.id] == 1 else f"{problem.id}@{problem.source_line}"
            messages = chat_messages(problem.problem, config.prompt.system)
            for checkpoint in checkpoints:
                identity = ids.get(checkpoint, checkpoint)
                keys = [
                    sample_key(
                        identity,
                        name,
                        item,
                        i,
                        messages,
                        decoding.temperature,
                        decoding.top_p,
                        config.eval.max_tokens,
                    )
                    for i in range(decoding.samples)
                ]
                plans.append(
                    ItemPlan(
                        checkpoint,
                        name,
                        item,
                        problem.problem,
                        problem.answer,
                        loaded.benchmark.grading,
                        messages,
                        decoding,
                        config.eval.max_tokens,
                        keys,
                        identity,
                    )
                )
    return plans


async def _run_plans(
    plans: Sequence[ItemPlan],
    store: SampleStore,
    client: ChatClient,
    judge: Judge | None,
    grader: Grader,
    concurrency: int,
    say: Callable[[str], None],
    live: EvalMetrics,
) -> RunStats:
    stats = RunStats()
    queue: asyncio.Queue[ItemPlan] = asyncio.Queue()
    for plan in plans:
        queue.put_nowait(plan)
    total = len(plans)
    done = 0
    started = time.monotonic()

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                plan = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await _run_item(plan, store, client, judge, grader, stats, live)
            done += 1
            if done % 100 == 0 or done == total:
                say(f"eval: {done}/{total} items ({time.monotonic() - started:.0f} s)")

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, total)))]
    try:
        await asyncio.gather(*workers)
    finally:
        # On an error (or a cancel) stop the other workers before the store closes under them.
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return stats


async def _run_item(
    plan: ItemPlan,
    store: SampleStore,
    client: ChatClient,
    judge: Judge | None,
    grader: Grader,
    stats: RunStats,
    live: EvalMetrics,
) -> None:
    existing = [store.get(key) for key in plan.keys]
    missing = [i for i, row in enumerate(existing) if row is None or "response" not in row]
    ungraded = [i for i, row in enumerate(existing) if row is not None and "response" in row and row["correct"] is None]
    stats.reused += len(plan.keys) - len(missing) - len(ungraded)
    rows: list[dict[str, Any]] = []
    if ungraded:
        stats.regraded += len(ungraded)
        for i in ungraded:
            row = dict(existing[i] or {})
            verdict = await _grade(plan, row["response"], judge, grader)
            if verdict is None:
                stats.failed.append(f"{plan.checkpoint}/{plan.benchmark}/{plan.item}: the judge was unreachable")
            rows.append({**row, **_grade_fields(verdict)})
    if missing:
        stats.requests += 1
        live.request(plan.checkpoint, plan.benchmark)
        started = time.monotonic()
        try:
            completions = await client.chat(
                plan.checkpoint,
                plan.messages,
                n=len(missing),
                temperature=plan.decoding.temperature,
                top_p=plan.decoding.top_p,
                max_tokens=plan.max_tokens,
            )
            error = None
        except RequestFailed as exc:
            if exc.status in (401, 403, 404):
                # Wrong key or model name: every request would fail alike; not an answer to cache.
                raise LimoError(f"the endpoint refused {plan.checkpoint!r}: {exc}") from None
            if exc.retryable:
                stats.failed.append(f"{plan.checkpoint}/{plan.benchmark}/{plan.item}: {exc}")
                completions = []
            else:
                stats.refused += len(missing)
                completions = [Completion("", None)] * len(missing)
            error = str(exc)
        seconds = round(time.monotonic() - started, 3)
        for sample, completion in zip(missing, completions, strict=False):
            verdict = (
                Verdict(False, None, f"request refused: {error}")
                if error is not None
                else await _grade(plan, completion.text, judge, grader)
            )
            stats.generated += 1
            if verdict is None:
                stats.failed.append(f"{plan.checkpoint}/{plan.benchmark}/{plan.item}: the judge was unreachable")
            rows.append(
                {
                    "key": plan.keys[sample],
                    "checkpoint": plan.checkpoint,
                    "checkpoint_id": plan.checkpoint_id,
                    "benchmark": plan.benchmark,
                    "item": plan.item,
                    "sample": sample,
                    "response": completion.text,
                    "finish_reason": completion.finish_reason,
                    "completion_tokens": completion.completion_tokens,
                    "gold": plan.gold,
                    "grading": plan.grading,
                    **_grade_fields(verdict),
                    "error": error,
                    "temperature": plan.decoding.temperature,
                    "seconds": seconds,
                }
            )
    if rows:
        store.append(rows)
        live.graded(plan.checkpoint, plan.benchmark, rows)


async def _grade(plan: ItemPlan, response: str, judge: Judge | None, grader: Grader) -> Verdict | None:
    """The verdict, or None when the judge could not be reached (the sample is kept and judged on a re-run)."""
    if plan.grading == "judge":
        assert judge is not None
        try:
            return await judge.judge(plan.problem, plan.gold, response)
        except RequestFailed:
            return None
    mode = "choice" if plan.grading == "choice" else "math"
    # math-verify can take seconds on a hostile answer: off the event loop, so other requests keep flowing.
    return await asyncio.to_thread(grader.grade, response, plan.gold, mode)


def _unfinished(row: dict[str, Any] | None) -> bool:
    return row is None or row.get("correct") is None


def _unfinished_samples(plans: Sequence[ItemPlan], store: SampleStore) -> int:
    return sum(_unfinished(store.get(key)) for plan in plans for key in plan.keys)


def _grade_fields(verdict: Verdict | None) -> dict[str, Any]:
    if verdict is None:
        return {"correct": None, "extracted": None, "grade_reason": "not graded yet: the judge was unreachable"}
    return {"correct": verdict.correct, "extracted": verdict.extracted, "grade_reason": verdict.reason}
