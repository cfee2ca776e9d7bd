"""The engine actor: one vLLM engine in a Ray actor (an engine pool's, or Ray Data's for `generate()`), and
`generate()`, which runs a Dataset through such actors.

Built as our own `map_batches` class around `vllm.LLM` rather than `ray.data.llm`: the latter returns only the
first completion when `n > 1` and rebuilds its engine for every dataset run, while the filters need
`n` samples per request so the prompt's prefill is shared. Rows carry either a `problem` (templated here as
a chat with the spec's system prompt) or a ready `prompt` string; an optional per-row `n` (and `max_tokens`)
overrides the sampling default, so one engine serves rounds of different sizes.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from limo_ray.engine.spec import EngineSpec

if TYPE_CHECKING:
    import ray.data

OUTPUT_COLUMNS = (
    "completions",
    "completion_tokens",
    "finish_reasons",
    "prompt_tokens",
    "error",
    "engine_ready_at",
    "request_started_at",
    "request_finished_at",
)


def chat_messages(problem: str, system_prompt: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": problem}]


# Batches handed to one engine actor at a time (the engine pool and the Ray Data stage alike).
BATCHES_IN_FLIGHT = 2


class _Batch:
    """One call's requests inside the engine loop: filled in as each request finishes."""

    def __init__(self, prompts: list[str], params: list[Any]) -> None:
        size = len(prompts)
        self.prompts, self.params = prompts, params
        self.outputs: list[Any] = [None] * size
        self.errors: list[str | None] = [None] * size
        self.started_at: list[float] = [0.0] * size
        self.finished_at: list[float] = [0.0] * size
        self.remaining = size
        self.failure: BaseException | None = None
        self.done = threading.Event()

    def finish_row(self, row: int, output: Any = None, error: str | None = None) -> None:
        self.outputs[row], self.errors[row] = output, error
        self.finished_at[row] = time.time()
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()

    def fail(self, error: BaseException) -> None:
        self.failure = error
        self.done.set()


class EngineActor:
    """One vLLM engine per actor, fed continuously: requests of every batch handed to the actor go into the
    same running engine, so a slot freed by a finished sample is refilled by the next batch's requests at
    once instead of the engine draining down to the slowest sample of each batch (long-tailed chains).

    The engine's `step()` loop runs in one thread of its own (vLLM's engine is not thread-safe); calls add their
    batch to an inbox and wait for their own rows. An actor started with `max_concurrency` > 1 (the engine pool
    does) therefore has several batches in flight; called one batch at a time it behaves as before.
    """

    def __init__(self, spec: EngineSpec, sampling: Mapping[str, Any]) -> None:
        os.environ.update(spec.env())
        from vllm import LLM

        self.spec = spec
        self.sampling = dict(sampling)
        self.llm = LLM(**spec.llm_kwargs())
        self.tokenizer = self.llm.get_tokenizer()
        self._inbox: queue.Queue[_Batch] = queue.Queue()
        self._broken: BaseException | None = None
        self._loop = threading.Thread(target=self._run_engine, name="vllm-engine-loop", daemon=True)
        self._loop.start()
        self.ready_at = time.time()

    def prompt_for(self, problem: str) -> str:
        return self.tokenizer.apply_chat_template(
            chat_messages(problem, self.spec.system_prompt),
            tokenize=False,
            add_generation_prompt=True,
            chat_template=self.spec.chat_template,
        )

    def ready(self) -> float:
        return self.ready_at

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this engine runs on (recorded in the stage's manifest: where the work happened)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def __call__(self, batch: Mapping[str, Sequence[Any]], sampling: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Generate for a batch of rows; `sampling` replaces the constructor's for this call (an engine pool
        serves several stages' sampling settings)."""
        from vllm import SamplingParams

        sampling = self.sampling if sampling is None else dict(sampling)
        size = len(next(iter(batch.values())))
        if "prompt" in batch:
            prompts = [str(p) for p in batch["prompt"]]
        else:
            prompts = [self.prompt_for(str(p)) for p in batch["problem"]]
        # Per-row overrides: `n` (a round's attempts), `max_tokens` (benches that model long-tailed lengths).
        overrides = [{key: int(batch[key][i]) for key in ("n", "max_tokens") if key in batch} for i in range(size)]
        params = [SamplingParams(**{"n": 1, **sampling, **row}) for row in overrides]
        work = self._submit(prompts, params)
        outputs = work.outputs
        out: dict[str, Any] = {key: _as_list(values) for key, values in batch.items()}
        out["completions"] = [[c.text for c in o.outputs] if o else [] for o in outputs]
        out["completion_tokens"] = [[len(c.token_ids) for c in o.outputs] if o else [] for o in outputs]
        out["finish_reasons"] = [[str(c.finish_reason) for c in o.outputs] if o else [] for o in outputs]
        out["prompt_tokens"] = [len(o.prompt_token_ids or []) if o else 0 for o in outputs]
        out["error"] = work.errors
        out["engine_ready_at"] = [self.ready_at] * size
        out["request_started_at"] = work.started_at
        out["request_finished_at"] = work.finished_at
        return out

    def _submit(self, prompts: list[str], params: list[Any]) -> _Batch:
        """Hand a batch to the engine loop and wait for all its rows. A batch whose every row is refused, or an
        engine that failed as a whole, raises: Ray then fails the call and the pool replaces the actor."""
        if self._broken is not None:
            raise RuntimeError(f"the engine failed earlier: {self._broken}") from self._broken
        work = _Batch(prompts, params)
        if not prompts:
            return work
        self._inbox.put(work)
        work.done.wait()
        if work.failure is not None:
            raise work.failure
        return work

    # ------------------------------------------------------------------------------------- the engine thread

    def _run_engine(self) -> None:
        engine = self.llm.llm_engine
        pending: dict[str, tuple[_Batch, int]] = {}
        taken: list[_Batch] = []  # batches out of the inbox this turn (not all in `pending` if adding one fails)
        while True:
            try:
                taken = [] if pending else [self._inbox.get()]  # idle: wait for work
                while not self._inbox.empty():  # new batches join the running engine before the next step
                    taken.append(self._inbox.get_nowait())
                for work in taken:
                    self._add(work, pending)
                if not pending:
                    continue
                for output in engine.step():
                    if output.finished:
                        work, row = pending.pop(output.request_id)
                        work.finish_row(row, output)
            except BaseException as error:  # the engine (or this loop) failed: every waiting batch fails with it
                self._broken = error
                for work in [*taken, *(w for w, _ in pending.values())]:
                    if not work.done.is_set():
                        work.fail(error)
                while not self._inbox.empty():
                    self._inbox.get_nowait().fail(error)
                return

    def _add(self, work: _Batch, pending: dict[str, tuple[_Batch, int]]) -> None:
        """Enqueue a batch's requests; if vLLM refuses the batch, add row by row so one poisoned prompt fails
        alone. A batch whose every row is refused fails as a whole."""
        now = time.time()
        try:
            ids = self.llm.enqueue(work.prompts, work.params, use_tqdm=False)
        except Exception as batch_error:
            ids, failed = [], 0
            for row, (prompt, param) in enumerate(zip(work.prompts, work.params, strict=True)):
                try:
                    ids += self.llm.enqueue([prompt], [param], use_tqdm=False)
                except Exception as row_error:
                    ids.append(None)
                    failed += 1
                    work.started_at[row] = now
                    work.finish_row(row, error=f"{type(row_error).__name__}: {row_error}"[:500])
            if failed == len(work.prompts):
                work.fail(batch_error)
                return
        for row, request_id in enumerate(ids):
            if request_id is not None:
                work.started_at[row] = now
                pending[_external_id(request_id)] = (work, row)


def _external_id(request_id: str) -> str:
    """The id finished outputs carry. `LLM.enqueue` numbers requests 0, 1, 2, ... and returns the engine's
    internal ids, which append a random suffix (`"7-1a2b3c4d"`) unless randomisation is switched off."""
    return request_id if request_id.isdigit() else request_id.rsplit("-", 1)[0]


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def generate(
    ds: ray.data.Dataset,
    spec: EngineSpec,
    sampling: Mapping[str, Any],
    concurrency: int = 1,
    batch_size: int = 64,
) -> ray.data.Dataset:
    """Run `ds` through `concurrency` engine actors; adds the OUTPUT_COLUMNS to every row.

    For one-process engines only (CPU, or one GPU per actor, which Ray Data places and frees itself). A
    tensor-parallel engine needs a placement group per actor, and Ray Data gives no hook to remove the groups
    when its actors end: those go through `EnginePool`, which does.
    """
    from limo_ray.errors import LimoError

    if spec.needs_placement_group():
        raise LimoError(
            f"engine {spec.name!r}: a {spec.world_size}-GPU engine cannot run in a Ray Data stage (its placement "
            "groups would outlive the run); use limo_ray.engine.EnginePool"
        )
    import ray.data

    return ds.map_batches(
        EngineActor,
        fn_constructor_kwargs={"spec": spec, "sampling": dict(sampling)},
        batch_size=batch_size,
        # Two batches in flight per actor, in threads: both feed the actor's one running engine, so it is not
        # drained down to one batch's slowest sample before the next batch arrives.
        compute=ray.data.ActorPoolStrategy(
            size=concurrency, max_concurrent_calls_per_actor=BATCHES_IN_FLIGHT, enable_true_multi_threading=True
        ),
        **spec.actor_options(),
    )
